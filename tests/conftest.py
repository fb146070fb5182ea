"""Shared fixtures. Each part of the appliance has a plugin module under tests/plugins/.

With pytest-xdist (`scripts/test` runs `-n 2 --dist loadgroup`), the tests of the image and of
Chromium run one after another in one group, on one worker: containers and browsers are what two
cores cannot run twice at once. Every other module goes whole to whichever worker is free, so that
its module-scoped fixtures start once and its tests run in their order."""
import pathlib

import pytest

pytest_plugins = sorted(
    f"plugins.{p.stem}" for p in (pathlib.Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)

SERIAL = "serial"


def pytest_configure(config):
    config.addinivalue_line("markers", "host_pfs: creates /pfs on the host for a moment; runs first, in the "
                                       "serial group (a server decides its datums' sandbox once, by whether "
                                       "/pfs exists: none must decide it meanwhile)")


# After tests/reliability's hook (tryfirst as well, registered later, so called earlier) has marked
# its tests `image`; before pytest-xdist reads the groups.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    first = [item for item in items if item.get_closest_marker("host_pfs")]
    items[:] = first + [item for item in items if item not in first]
    for item in items:
        if item in first or item.get_closest_marker("image") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group(SERIAL))
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


_worker_rows: list = []  # pytest-xdist's controller: the reliability rows its workers sent


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _worker_rows.extend(getattr(node, "workeroutput", {}).get("reliability_rows", []))


def pytest_sessionfinish(session):
    if _worker_rows:
        from reliability.conftest import write_report

        write_report(_worker_rows)
