"""Label Studio's own component classes, read from the bundle it serves, for the pages we add.

Label Studio's buttons, badges and user pictures are CSS modules: their class names carry a hash
(`base--kfuBd`) that changes with each frontend build, and a button also needs the utility classes
its `buttonVariant()` adds. Our pages borrow them instead of restyling: the class maps are found in
the served `main.js` by pattern (the module's export object and buttonVariant's class strings), so
the stylesheet Label Studio already loads (`main.css`) styles our elements exactly like its own. A
bundle where a pattern is missing gives an empty map (logged once): the pages keep working,
unstyled, and `tests/fast/test_ls_look.py` fails for that bundle.
"""

import functools
import logging
import pathlib
import re

logger = logging.getLogger(__name__)

# One distinctive key per CSS module: the export object holding it is that module's class map.
MODULES = {
    "button": "variant-neutral-interted",  # @humansignal/ui Button (the key's typo is Label Studio's)
    "badge": "variant-canteloupe",
    "userpic": "bottomRight",
    "typography": "typography-title-medium",
}
_PAIR = re.compile(r'(?:"([^"\\]+)"|([A-Za-z_$][\w$]*)):"([^"\\]+)"')
# buttonVariant(): `return(0,X.cn)("inline-flex items-center ...","font-medium ...",...,...l,...)`
_BUTTON_UTILITIES = re.compile(r'\(0,[\w$]+\.cn\)\(((?:"[^"\\]*",){2,8})\.\.\.[\w$]+,\{\[[\w$]+\.waiting\]')


def module_classes(js: str, key: str) -> dict:
    """{local name: built class name} of the CSS module whose export object has `key`."""
    found = re.search(r'[{,]"?' + re.escape(key) + r'"?:"' + re.escape(key) + r'--[\w-]+"', js)
    if not found:
        return {}
    start, end = js.rfind("{", 0, found.start() + 1), js.find("}", found.end())
    classes = {quoted or bare: value for quoted, bare, value in _PAIR.findall(js[start + 1 : end])}
    # every value of a CSS module's map is "<local name>--<hash>"
    if not all(value.startswith(name + "--") for name, value in classes.items()):
        return {}
    return classes


def button_utilities(js: str) -> str:
    found = _BUTTON_UTILITIES.search(js)
    if not found:
        return ""
    return " ".join(re.findall(r'"([^"\\]*)"', found.group(1)))


def classes_from_bundle(js: str) -> dict:
    """The maps our pages use: {"button": {...}, "badge": ..., "userpic": ..., "typography": ...,
    "button_utilities": "..."}; a part the bundle does not show is empty."""
    out = {name: module_classes(js, key) for name, key in MODULES.items()}
    out["button_utilities"] = button_utilities(js)
    return out


@functools.cache
def classes() -> dict:
    """Read once per process from the bundle Label Studio serves (`settings.REACT_APP_ROOT`)."""
    from django.conf import settings

    path = pathlib.Path(settings.REACT_APP_ROOT) / "main.js"
    try:
        found = classes_from_bundle(path.read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        logger.warning("Label Studio's bundle %s cannot be read (%s): our pages go unstyled", path, exc)
        return classes_from_bundle("")
    missing = [name for name, value in found.items() if not value]
    if missing:
        logger.warning(
            "Label Studio's bundle %s has no %s classes we know: those parts of our pages go unstyled",
            path,
            ", ".join(missing),
        )
    return found
