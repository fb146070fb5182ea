"""Add a Pachyderm tile to Label Studio 1.23.2's storage wizard (Source and Target), and a
Pachyderm summary (repository, commit; for a Target a link to its Versions page) to the storage cards.

    python patches/apply_frontend.py [--revert] [LABEL_STUDIO_PACKAGE_DIR]

The wizard's provider tiles are a hard-coded object in the minified main bundle, so the only
way in without rebuilding the frontend is to insert one more entry into that object. Minified
names change with every release: the patch finds everything by pattern and refuses a bundle it
does not recognise instead of guessing. Run at image build time; standard library only.
`--revert` takes the tile out again (byte for byte). Exit codes: 0 done or nothing to do,
2 usage or bundle not found, 3 bundle not recognised.
"""
import importlib.util
import json
import os
import pathlib
import re
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from source_map_columns import SourceMapError, insert_columns, remove_columns, utf16_column  # noqa: E402

PINNED_VERSION = "1.23.2"
BUNDLE = pathlib.Path("web", "dist", "apps", "labelstudio", "main.js")
PROVIDER_TEMPLATE = pathlib.Path(__file__).resolve().parent / "pachyderm_provider.js"
MARKER = "/* pachstudio:pachyderm-provider */"
MAP_KEY = "x_pachstudio_pachyderm_provider"

VERSION_RE = re.compile(r'"label-studio@([0-9][0-9A-Za-z.+-]*?)-frontend"')
IDENT = r"[A-Za-z_$][\w$]*"
# The providers object: `{s3:{...},gcs:X,azure:X,redis:R,s3s:{...},...,databricks:X,localfiles:Y}`.
REDIS_ENTRY_RE = re.compile(rf"[{{,]redis:({IDENT}),s3s:")
PROVIDERS_END_RE = re.compile(rf"databricks:{IDENT},localfiles:{IDENT}\}}")
JSX_RUNTIME_RE = re.compile(rf"\(0,({IDENT})\.jsxs?\)\(")
MAX_OBJECT_SPAN = 20_000
# The card summary picks one child of a `Oneof` by `case`; ours goes after the localfiles one.
SUMMARY_MARKER = "/* pachstudio:pachyderm-summary */"
SUMMARY_END = "/* /pachstudio:pachyderm-summary */"
SUMMARY_MAP_KEY = "x_pachstudio_pachyderm_summary"
# One item of that summary: the pipelines a Target's Sync started, or a Source commit's provenance.
JOBS_TEMPLATE = pathlib.Path(__file__).resolve().parent / "pipeline_jobs_card.js"
JOBS_MARKER = "/* pachstudio:pipeline-jobs */"
JOBS_END = "/* /pachstudio:pipeline-jobs */"
SUMMARY_RE = re.compile(rf'\(0,({IDENT})\.jsx\)\({IDENT},\{{case:"localfiles",storage:({IDENT})\}}\)(?=\]\}}\),'
                        rf'\(0,\1\.jsx\)\(({IDENT})\.Item,\{{term:"Status")')


class PatchError(Exception):
    """A refusal: the message says what was expected and where."""

    def __init__(self, message, exit_code=3):
        super().__init__(message)
        self.exit_code = exit_code


def default_package_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("label_studio")
    if spec is None or not spec.submodule_search_locations:
        raise PatchError("label_studio is not installed in this Python; pass LABEL_STUDIO_PACKAGE_DIR", 2)
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def locate_bundle(package_dir: pathlib.Path) -> pathlib.Path:
    """pip puts `web/` beside the `label_studio` package (Label Studio serves `core/../../web`)."""
    if package_dir.is_file():
        return package_dir
    for base in (package_dir, package_dir.parent):
        if (base / BUNDLE).is_file():
            return base / BUNDLE
    raise PatchError(f"no {BUNDLE} in {package_dir} or {package_dir.parent}: is this a Label Studio package dir?", 2)


def check_version(js: str, bundle: pathlib.Path) -> None:
    found = set(VERSION_RE.findall(js))
    if found != {PINNED_VERSION}:
        seen = ", ".join(sorted(found)) or "no version marker"
        raise PatchError(f"{bundle} is Label Studio {seen}, not {PINNED_VERSION}: this patch only knows the "
                         f"{PINNED_VERSION} bundle; re-derive it for the new version")


def find_one(pattern: re.Pattern, js: str, what: str, bundle: pathlib.Path) -> re.Match:
    matches = list(pattern.finditer(js))
    if len(matches) != 1:
        raise PatchError(f"{bundle}: expected exactly one {what} (pattern {pattern.pattern!r}), "
                         f"found {len(matches)}; not the bundle this patch was written for")
    return matches[0]


def string_schema_factory(js: str, redis_var: str, bundle: pathlib.Path) -> str:
    """The minified name of zod's `z.string`, read off the redis entry the tile is modelled on."""
    definition = find_one(re.compile(rf'(?<![\w$]){re.escape(redis_var)}=\{{name:"redis",'), js,
                          "redis provider definition", bundle)
    body = js[definition.end():definition.end() + 3000]
    factory = re.search(rf'schema:({IDENT})\(\)\.min\(1,"Host is required"\)', body)
    if not factory:
        raise PatchError(f"{bundle}: the redis provider has no `host` field built with z.string(); "
                         "not the bundle this patch was written for")
    return factory.group(1)


def jsx_runtime(providers_object: str, bundle: pathlib.Path) -> str:
    names = set(JSX_RUNTIME_RE.findall(providers_object))
    if len(names) != 1:
        raise PatchError(f"{bundle}: cannot tell the JSX runtime used by the providers object "
                         f"(found {sorted(names) or 'none'})")
    return names.pop()


def one_line(template: pathlib.Path) -> str:
    """A template on one line: a newline would shift every later line of the source map."""
    text = template.read_text(encoding="utf-8")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def provider_snippet(string_factory: str, jsx: str) -> str:
    return one_line(PROVIDER_TEMPLATE).replace("__STRING__", string_factory).replace("__JSX__", jsx)


def pipeline_jobs_item(jsx: str, items: str, s: str) -> str:
    """The card's "Pipelines" (Target: the jobs its last Sync started, updated while they run) or
    "Provenance" (Source: is its commit a pipeline's output) item, keyed by the commit so a new
    Sync starts a new poll (pipeline_jobs_card.js)."""
    return (f'{JOBS_MARKER}(0,{jsx}.jsx)({items}.Item,{{term:"last_commit" in {s}?"Pipelines":"Provenance",'
            f'children:(0,{jsx}.jsx)("div",{{className:"pachstudio-pipelines",'
            f'ref:el=>({one_line(JOBS_TEMPLATE)})(el,{s})}},{s}.id+":"+({s}.last_commit||{s}.synced_commit||""))}})'
            f'{JOBS_END}')


def insertion(js: str, bundle: pathlib.Path) -> tuple[int, str]:
    """Where the entry goes (right after `redis`, among the usable providers) and its text."""
    redis = find_one(REDIS_ENTRY_RE, js, "`redis:X,s3s:` entry", bundle)
    end = find_one(PROVIDERS_END_RE, js, "`databricks:X,localfiles:Y}` end of the providers object", bundle)
    if not 0 < end.start() - redis.end() < MAX_OBJECT_SPAN:
        raise PatchError(f"{bundle}: the redis entry and `databricks:X,localfiles:Y}}` are not in one object")
    entry = provider_snippet(string_schema_factory(js, redis.group(1), bundle),
                             jsx_runtime(js[redis.start():end.end()], bundle))
    at = redis.end() - len("s3s:")
    return at, f"pachyderm:{entry},"


def summary_insertion(js: str, bundle: pathlib.Path) -> tuple[int, str]:
    """After the localfiles case of the storage card's summary: the repository and the commit the
    storage last synced (Source: `synced_commit`, Target: `last_commit`), so a person sees which
    commit a Sync made without leaving Label Studio."""
    m = find_one(SUMMARY_RE, js, "storage card summary with a localfiles case", bundle)
    jsx, storage, items = m.groups()
    item = f"(0,{jsx}.jsx)({items}.Item,"
    s = "e.storage"
    component = (f"e=>(0,{jsx}.jsxs)({jsx}.Fragment,{{children:["
                 f'{item}{{term:"Repository",children:[{s}.pach_project||"default","/",{s}.repo,"@",'
                 f'{s}.commit||{s}.branch].join("")}}),'
                 f'{item}{{term:"Commit",children:{s}.last_commit||{s}.synced_commit||"not synced yet"}}),'
                 f'{predictions_item(jsx, items, s)},'
                 f'{pipeline_jobs_item(jsx, items, s)},{versions_item(jsx, items)}]}})')
    text = f',{SUMMARY_MARKER}(0,{jsx}.jsx)({component},{{case:"pachyderm",storage:{storage}}}){SUMMARY_END}'
    return m.end(), text


def predictions_item(jsx: str, items: str, s: str) -> str:
    """Sources with `predictions_from`: what the last Sync did with its predictions (the Sync's
    `meta.predictions.message`; the files it skipped, with why, are in the card's View Logs)."""
    message = f'{s}.meta&&{s}.meta.predictions&&{s}.meta.predictions.message'
    return (f'!!{s}.predictions_from&&(0,{jsx}.jsx)({items}.Item,{{term:"Predictions",'
            f'children:({message})||"from "+{s}.predictions_from+": not synced yet"}})')


def versions_item(jsx: str, items: str) -> str:
    """Targets only (their API answer has `last_commit`): a link to the Versions page (issue 17).
    A separate item of the summary, between its own markers."""
    s = "e.storage"
    href = f'"/pachyderm/targets/"+{s}.id+"/versions"'
    # a full page load: Label Studio's router would otherwise render the path inside its own app
    go = f"onClick:t=>{{t.preventDefault();window.location.assign({href})}}"
    link = f'(0,{jsx}.jsx)("a",{{href:{href},{go},children:"Open the Versions page"}})'
    return (f'/* pachstudio:versions-link */"last_commit" in {s}&&(0,{jsx}.jsx)({items}.Item,'
            f'{{term:"Versions",children:{link}}})/* /pachstudio:versions-link */')


def summary_span(js: str) -> tuple[int, int]:
    start = js.index(SUMMARY_MARKER) - 1  # the comma before it
    return start, js.index(SUMMARY_END, start) + len(SUMMARY_END)


def line_and_column(js: str, offset: int) -> tuple[int, int]:
    line = js.count("\n", 0, offset)
    start = js.rfind("\n", 0, offset) + 1
    return line, utf16_column(js[start:offset])


def write_atomically(path: pathlib.Path, text: str) -> None:
    """A half-written bundle would break the page; replace it whole, keeping its mode."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_map(map_path: pathlib.Path) -> dict | None:
    if not map_path.is_file():
        return None
    try:
        source_map = json.loads(map_path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise PatchError(f"{map_path} is not JSON ({e}); not the bundle this patch was written for")
    if source_map.get("version") != 3 or not isinstance(source_map.get("mappings"), str):
        raise PatchError(f"{map_path} is not a version 3 source map")
    return source_map


def write_map(source_map: dict, map_path: pathlib.Path) -> None:
    write_atomically(map_path, json.dumps(source_map, separators=(",", ":"), ensure_ascii=False))


def entry_span(js: str) -> tuple[int, int]:
    """Offsets of the inserted `pachyderm:{...},` in a patched bundle."""
    start = js.index(MARKER) - len("pachyderm:")
    if js[start:start + len("pachyderm:")] != "pachyderm:":
        raise PatchError("the Pachyderm marker is in the bundle but not as the `pachyderm:` entry; "
                         "reinstall label-studio and patch again")
    return start, js.index(",s3s:", start) + 1


def patch(bundle: pathlib.Path) -> str:
    """Patch the bundle in place and say what was done. Raises PatchError, leaving files as they were.

    The bundle and its map are each judged by their own marker, so a run stopped between the
    two writes is finished by the next run instead of shifting the map twice.
    """
    js = bundle.read_text(encoding="utf-8")
    check_version(js, bundle)
    map_path = bundle.with_name(bundle.name + ".map")
    source_map = read_map(map_path)
    done = []

    # Two insertions, each judged by its own markers; undone in the reverse order by revert().
    for marker, map_key, insert, span, what in (
            (MARKER, MAP_KEY, insertion, entry_span,
             "added the Pachyderm tile to the storage wizard (Source and Target)"),
            (SUMMARY_MARKER, SUMMARY_MAP_KEY, summary_insertion, summary_span,
             "added the Pachyderm summary to the storage cards")):
        if marker not in js:
            at, text = insert(js, bundle)
            js = js[:at] + text + js[at:]
            write_atomically(bundle, js)
            done.append(what)
        if source_map is not None and map_key not in source_map:
            start, end = span(js)
            line, column = line_and_column(js, start)
            length = utf16_column(js[start:end])
            try:
                source_map["mappings"] = insert_columns(source_map["mappings"], line, column, length)
            except SourceMapError as e:
                raise PatchError(f"{map_path}: cannot read its mappings ({e})")
            source_map[map_key] = {"line": line, "column": column, "length": length}
            write_map(source_map, map_path)
            done.append("moved the source map's columns after it")
    if not done:
        return f"{bundle} already has the Pachyderm tile and card summary: nothing changed"
    return f"{bundle}: " + "; ".join(done)


def revert(bundle: pathlib.Path) -> str:
    """Take the tile out again, restoring the bundle and its map byte for byte."""
    js = bundle.read_text(encoding="utf-8")
    map_path = bundle.with_name(bundle.name + ".map")
    source_map = read_map(map_path)
    done = []
    for marker, map_key, span, what in (
            (SUMMARY_MARKER, SUMMARY_MAP_KEY, summary_span, "removed the Pachyderm card summary"),
            (MARKER, MAP_KEY, entry_span, "removed the Pachyderm tile")):
        if source_map is not None and map_key in source_map:
            where = source_map.pop(map_key)
            try:
                source_map["mappings"] = remove_columns(source_map["mappings"], where["line"],
                                                        where["column"], where["length"])
            except (SourceMapError, KeyError, TypeError) as e:
                raise PatchError(f"{map_path}: cannot undo the column shift ({e})")
            write_map(source_map, map_path)
            done.append("restored the source map")
        if marker in js:
            start, end = span(js)
            js = js[:start] + js[end:]
            write_atomically(bundle, js)
            done.append(what)
    if not done:
        return f"{bundle} has no Pachyderm tile: nothing changed"
    return f"{bundle}: " + "; ".join(done)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    undo = "--revert" in argv
    args = [a for a in argv if a != "--revert"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        package_dir = pathlib.Path(args[0]) if args else default_package_dir()
        bundle = locate_bundle(package_dir)
        print(revert(bundle) if undo else patch(bundle))
        return 0
    except PatchError as e:
        print(f"apply_frontend: refused: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
