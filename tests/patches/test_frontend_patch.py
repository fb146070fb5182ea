"""patches/apply_frontend.py against the real pinned Label Studio 1.23.2 bundle (copies of it)."""
import json
import re
import shutil
import subprocess

import pytest

from .conftest import BUNDLE_DIR, PINNED_SHA256, load_apply_module, run_apply, sha256

apply_frontend = load_apply_module()
from source_map_columns import decode_segment, utf16_column  # noqa: E402  (put on sys.path by the module)


def original_positions(source_map: dict, line: int) -> dict[int, tuple]:
    """Generated column -> (source, original line, original column) for one generated line."""
    state = [0, 0, 0, 0]
    for number, text in enumerate(source_map["mappings"].split(";")):
        column, positions = 0, {}
        for segment in filter(None, text.split(",")):
            fields = decode_segment(segment)
            column += fields[0]
            for i, delta in enumerate(fields[1:]):
                state[i] += delta
            positions[column] = (source_map["sources"][state[0]], state[1], state[2]) if len(fields) > 1 else None
        if number == line:
            return positions
    raise AssertionError(f"no generated line {line}")


def read_map(bundle):
    return json.loads(bundle.with_name("main.js.map").read_text(encoding="utf-8"))


def providers_object(js: str) -> str:
    start = js.index("{s3:{name:\"s3\"")
    return js[start:js.index("localfiles:", start)]


def test_patch_inserts_the_pachyderm_entry_into_the_providers_object(bundle_root, bundle):
    result = run_apply(bundle_root)

    assert result.returncode == 0, result.stderr
    assert "added the Pachyderm tile" in result.stdout
    providers = providers_object(bundle.read_text(encoding="utf-8"))
    assert re.search(r'redis:[\w$]+,pachyderm:/\* pachstudio:pachyderm-provider \*/ \{ name: "pachyderm", '
                     r'title: "Pachyderm"', providers)
    fields = ("pach_project", "repo", "branch", "commit", "predictions_from", "prefix", "file_format", "layout",
              "export_formats_text", "splits")
    for field in fields:
        assert f'name: "{field}"' in providers
    # predictions_from: an optional text of the Source form only, on a row of its own
    entry = providers.split("pachyderm:", 1)[1]
    field = entry[entry.index('name: "predictions_from"'):]
    field = field[:field.index("}")]
    assert 'type: "text"' in field and '.optional().default("")' in field and 'target: "import"' in field
    assert '{ fields: ["commit"] }, { fields: ["predictions_from"] },' in entry


def test_patched_bundle_is_valid_javascript(bundle_root, bundle):
    assert run_apply(bundle_root).returncode == 0

    check = subprocess.run(["node", "--check", str(bundle)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


def test_the_entry_uses_the_bundles_own_zod_and_jsx(bundle_root, bundle):
    """Minified names are read off the redis entry, not hard-coded: they must be the ones redis uses."""
    js = bundle.read_text(encoding="utf-8")
    redis = re.search(r'=\{name:"redis",.*?schema:([\w$]+)\(\)\.min\(1,"Host is required"\)', js)
    jsx = set(re.findall(r"\(0,([\w$]+)\.jsxs?\)", providers_object(js)))

    assert run_apply(bundle_root).returncode == 0

    entry = providers_object(bundle.read_text(encoding="utf-8")).split("pachyderm:", 1)[1]
    assert f"schema: {redis.group(1)}().min(1, \"Repository is required\")" in entry
    assert {m for m in re.findall(r"([\w$]+)\.jsxs?\(", entry)} == jsx


def test_source_map_still_maps_the_code_after_the_entry(bundle_root, bundle):
    js_before = bundle.read_text(encoding="utf-8")
    anchor = js_before.index(",s3s:")
    line = js_before.count("\n", 0, anchor)
    line_start = js_before.rfind("\n", 0, anchor) + 1
    before = original_positions(read_map(bundle), line)

    assert run_apply(bundle_root).returncode == 0

    js_after = bundle.read_text(encoding="utf-8")
    after = original_positions(read_map(bundle), line)
    # The two insertions (wizard tile, card summary), as UTF-16 column spans of the patched line.
    spans = sorted((utf16_column(js_after[line_start:a]), utf16_column(js_after[line_start:b]))
                   for a, b in (apply_frontend.entry_span(js_after), apply_frontend.summary_span(js_after)))
    assert all(b - a > 200 for a, b in spans)
    for a, _ in spans:  # inserted text is explicitly unmapped rather than blamed on its neighbour
        assert after[a] is None

    def original_column(column):
        return column - sum(b - a for a, b in spans if b <= column)

    kept = {original_column(c): p for c, p in after.items()
            if not any(a <= c < b for a, b in spans)}
    # Every mapped position kept its source and moved by exactly the text inserted before it.
    assert len(kept) > 10_000
    assert kept == before
    # Spot check: the code the map names there is the code at that column in the patched bundle.
    target = js_after.index("databricks:", line_start)
    source, src_line, src_col = after[utf16_column(js_after[line_start:target])]
    assert source.endswith("providers/index.ts")
    original = read_map(bundle)["sourcesContent"][read_map(bundle)["sources"].index(source)]
    assert original.splitlines()[src_line][src_col:].lstrip().startswith("databricks")


def test_card_summary_shows_the_repository_and_commit_for_pachyderm_only(bundle_root, bundle):
    assert run_apply(bundle_root).returncode == 0
    js = bundle.read_text(encoding="utf-8")
    start, end = apply_frontend.summary_span(js)
    summary = js[start:end]
    assert '{case:"pachyderm",storage:' in summary
    assert 'term:"Commit",children:e.storage.last_commit||e.storage.synced_commit' in summary
    # Targets (whose answer has last_commit) link to their Versions page
    assert '"last_commit" in e.storage&&' in summary
    href = '"/pachyderm/targets/"+e.storage.id+"/versions"'
    assert (f'{{href:{href},onClick:t=>{{t.preventDefault();window.location.assign({href})}},'
            'children:"Open the Versions page"}') in summary
    # it sits among the card's other cases, right before the Status item
    assert js[end:end + 60].startswith(']}),(0,') and 'term:"Status"' in js[end:end + 80]
    assert js.count("/* pachstudio:pachyderm-summary */") == 1


def test_card_summary_says_what_the_last_sync_did_with_a_sources_predictions(bundle_root, bundle):
    """Only a Source with predictions_from gets the item; it shows the Sync's meta.predictions.message."""
    assert run_apply(bundle_root).returncode == 0
    js = bundle.read_text(encoding="utf-8")
    start, end = apply_frontend.summary_span(js)
    summary = js[start:end]
    item = summary[summary.index('!!e.storage.predictions_from&&'):]
    item = item[:item.index(apply_frontend.JOBS_MARKER)]
    assert 'term:"Predictions"' in item
    assert ('children:(e.storage.meta&&e.storage.meta.predictions&&e.storage.meta.predictions.message)'
            '||"from "+e.storage.predictions_from+": not synced yet"') in item
    assert summary.index('term:"Commit"') < summary.index('term:"Predictions"')


def test_card_summary_has_a_delimited_pipelines_item_that_polls_the_storage_endpoints(bundle_root, bundle):
    """The Pipelines (Target) / Provenance (Source) item is its own delimited element of the summary,
    after the Commit item, keyed by the commit; it reads /jobs or /provenance and polls every 2 s."""
    assert run_apply(bundle_root).returncode == 0
    js = bundle.read_text(encoding="utf-8")
    start, end = apply_frontend.summary_span(js)
    summary = js[start:end]
    assert summary.count(apply_frontend.JOBS_MARKER) == 1 and summary.count(apply_frontend.JOBS_END) == 1
    item = summary[summary.index(apply_frontend.JOBS_MARKER):summary.index(apply_frontend.JOBS_END)]
    assert summary.index('term:"Commit"') < summary.index(apply_frontend.JOBS_MARKER)
    assert 'term:"last_commit" in e.storage?"Pipelines":"Provenance"' in item
    assert 'e.storage.id+":"+(e.storage.last_commit||e.storage.synced_commit||"")' in item  # the React key
    assert '"/jobs"' in item and '"/provenance"' in item and "setTimeout(poll, 2000)" in item
    assert "\n" not in item and "//" not in item.replace("://", "")  # one line, no line comment to swallow code


def test_second_run_changes_nothing_and_says_so(bundle_root, bundle):
    assert run_apply(bundle_root).returncode == 0
    patched = {name: sha256(bundle.with_name(name)) for name in PINNED_SHA256}

    again = run_apply(bundle_root)

    assert again.returncode == 0, again.stderr
    assert "nothing changed" in again.stdout
    assert {name: sha256(bundle.with_name(name)) for name in PINNED_SHA256} == patched
    assert bundle.read_text(encoding="utf-8").count("pachstudio:pachyderm-provider") == 1
    assert bundle.read_text(encoding="utf-8").count("/* pachstudio:pachyderm-summary */") == 1


def test_run_stopped_between_bundle_and_map_is_finished_by_the_next_run(bundle_root, bundle, pristine_root):
    assert run_apply(bundle_root).returncode == 0
    fully_patched_map = sha256(bundle.with_name("main.js.map"))
    shutil.copy2(pristine_root / BUNDLE_DIR / "main.js.map", bundle.with_name("main.js.map"))

    result = run_apply(bundle_root)

    assert result.returncode == 0, result.stderr
    assert "source map" in result.stdout
    assert sha256(bundle.with_name("main.js.map")) == fully_patched_map


def test_revert_restores_the_pinned_files_byte_for_byte(bundle_root, bundle):
    assert run_apply(bundle_root).returncode == 0

    result = run_apply("--revert", bundle_root)

    assert result.returncode == 0, result.stderr
    assert {name: sha256(bundle.with_name(name)) for name in PINNED_SHA256} == PINNED_SHA256


@pytest.mark.parametrize("old, new", [
    ("databricks:vo,localfiles:Oo}", "databricks:vo,localFiles:Oo}"),
    ("redis:No,s3s:", "redis:No,s3:"),
    ('schema:Fa().min(1,"Host is required")', 'schema:Fa().min(1,"A host is required")'),
], ids=["no-providers-end", "no-redis-entry", "no-redis-host-field"])
def test_refuses_a_bundle_without_the_pattern_and_touches_nothing(bundle_root, bundle, old, new):
    js = bundle.read_text(encoding="utf-8")
    assert js.count(old) == 1
    bundle.write_text(js.replace(old, new), encoding="utf-8")
    before = {name: sha256(bundle.with_name(name)) for name in PINNED_SHA256}

    result = run_apply(bundle_root)

    assert result.returncode == 3
    assert "refused" in result.stderr and "not the bundle this patch was written for" in result.stderr
    assert {name: sha256(bundle.with_name(name)) for name in PINNED_SHA256} == before


def test_refuses_another_label_studio_version_by_name(bundle_root, bundle):
    js = bundle.read_text(encoding="utf-8")
    bundle.write_text(js.replace("label-studio@1.23.2-frontend", "label-studio@1.24.0-frontend"), encoding="utf-8")
    before = sha256(bundle)

    result = run_apply(bundle_root)

    assert result.returncode == 3
    assert "1.24.0, not 1.23.2" in result.stderr
    assert sha256(bundle) == before


def test_refuses_an_unrelated_javascript_file(tmp_path):
    bundle = tmp_path / BUNDLE_DIR / "main.js"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("console.log('hello');\n")

    result = run_apply(tmp_path)

    assert result.returncode == 3
    assert "no version marker" in result.stderr
    assert bundle.read_text() == "console.log('hello');\n"


def test_says_where_it_looked_when_there_is_no_bundle(tmp_path):
    result = run_apply(tmp_path / "label_studio")

    assert result.returncode == 2
    assert "web/dist/apps/labelstudio/main.js" in result.stderr and str(tmp_path) in result.stderr


def test_finds_the_installed_bundle_beside_the_package_by_default(installed_package_dir):
    """No argument: the bundle pip put at site-packages/web, which Label Studio serves as /react-app/."""
    bundle = apply_frontend.locate_bundle(installed_package_dir)

    assert installed_package_dir.name == "label_studio"
    assert bundle == installed_package_dir.parent / BUNDLE_DIR / "main.js"
