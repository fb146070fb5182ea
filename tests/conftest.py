"""Shared fixtures. Each part of the appliance has a plugin module under tests/plugins/.

With pytest-xdist (`scripts/test` runs `-n 2 --dist loadgroup`), the tests of the image and of
Chromium run one after another in one group, on one worker: containers and browsers are what two
cores cannot run twice at once. Every other module goes whole to whichever worker is free, so that
its module-scoped fixtures start once and its tests run in their order."""
import json
import os
import pathlib

import pytest

pytest_plugins = sorted(
    f"plugins.{p.stem}" for p in (pathlib.Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)

SERIAL = "serial"
ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "test-artifacts"


# After tests/reliability's hook (tryfirst as well, registered later, so called earlier) has marked
# its tests `image`.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("image") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.xdist_group(SERIAL))
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


# pytest-xdist 3.8's own loadgroup passes each test's group to its controller inside the test's id,
# which pytest 9.2 no longer lets it change (pytest-xdist issue 1386): its groups are ignored. So
# each worker writes the groups it collected to a file named after the controller (its parent
# process), and the controller's scheduler reads them.
def _groups_file(controller_pid: int) -> pathlib.Path:
    return ARTIFACTS / f"xdist-groups-{controller_pid}.json"


@pytest.hookimpl(tryfirst=True)  # before the worker tells the controller its collection is complete
def pytest_collection_finish(session):
    if getattr(session.config, "workerinput", None) is None:
        return
    groups = {item.nodeid: mark.args[0] for item in session.items
              for mark in item.iter_markers("xdist_group")}
    ARTIFACTS.mkdir(exist_ok=True)
    partial = _groups_file(os.getppid()).with_suffix(f".{os.getpid()}")
    partial.write_text(json.dumps(groups))
    partial.rename(_groups_file(os.getppid()))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """Each group whole to one worker, the largest first (LoadScopeScheduling's order)."""

        groups = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                path = _groups_file(os.getpid())
                self.groups = json.loads(path.read_text())
                path.unlink()
            return self.groups.get(nodeid, nodeid)

    if config.getvalue("dist") == "loadgroup":
        return GroupScheduling(config, log)
    return None


_worker_rows: list = []  # pytest-xdist's controller: the reliability rows its workers sent


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _worker_rows.extend(getattr(node, "workeroutput", {}).get("reliability_rows", []))


def pytest_sessionfinish(session):
    if _worker_rows:
        from reliability.conftest import write_report

        write_report(_worker_rows)
