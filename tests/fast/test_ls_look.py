"""Label Studio's component classes, found in the bundle it serves (ls_look): every class the pages
borrow exists in the pinned 1.23.2 bundle and is styled by its stylesheets; a bundle without them
gives empty maps, not an error."""

import importlib.util
import pathlib
import re

import pytest

from pachstudio.labelstudio.ls_look import MODULES, classes_from_bundle

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def bundle() -> pathlib.Path:
    spec = importlib.util.find_spec("label_studio")
    return pathlib.Path(list(spec.submodule_search_locations)[0]).parent / "web" / "dist" / "apps" / "labelstudio"


def test_every_class_the_pages_use_is_in_the_bundle_and_styled_by_its_stylesheet(bundle):
    found = classes_from_bundle((bundle / "main.js").read_text(encoding="utf-8"))
    stylesheet = (bundle / "main.css").read_text(encoding="utf-8")
    assert set(found) == set(MODULES) | {"button_utilities"}
    used = {
        "button": [
            "base",
            "variant-primary",
            "variant-neutral",
            "look-outlined",
            "look-string",
            "size-small",
            "size-smaller",
            "align-default",
        ],
        "badge": [
            "badge",
            "variant-kale",
            "variant-persimmon",
            "variant-canteloupe",
            "variant-grape",
            "variant-sand",
            "style-filled",
            "shape-squared",
            "size-small",
        ],
        "userpic": ["userpic", "username"],
        "typography": ["typography-title-small", "typography-title-medium"],
    }
    for module, names in used.items():
        for name in names:
            built = found[module][name]
            assert re.fullmatch(re.escape(name) + r"--[\w-]{5}", built), (module, name, built)
            assert f".{built}" in stylesheet, f"{built} ({module} {name}) is not in main.css"
    # the utility classes are in the Tailwind stylesheet the app injects (a string in main.js, "\\" doubled)
    script = (bundle / "main.js").read_text(encoding="utf-8")
    utilities = found["button_utilities"].split()
    assert utilities[:3] == ["inline-flex", "items-center", "rounded-smaller"] and len(utilities) > 15
    for utility in utilities:
        escaped = re.sub(r"([\[\]:&/.()])", r"\\\\\1", utility)
        assert re.search(re.escape("." + escaped) + r"(?=[ :{,])", script), f"no Tailwind rule for {utility} in main.js"


def test_a_bundle_without_them_gives_empty_maps():
    assert classes_from_bundle("const x = {};") == {**{name: {} for name in MODULES}, "button_utilities": ""}
    # an object that only looks like one (a value not built from its key) is not taken
    assert classes_from_bundle('{badge:"other--Ab12c","variant-canteloupe":"variant-canteloupe--Zz9_x"}')["badge"] == {}
