"""PACHSTUDIO_CLUSTER_TIMEOUT takes effect when the mount server makes its cluster connection
(not only if it was set before some import), and a value that is no number says which setting."""

import pytest

from pachstudio.mount import remote

pytestmark = pytest.mark.fast


@pytest.fixture(autouse=True)
def default_afterwards():
    yield
    remote.set_timeouts(remote.DEFAULT_CALL_TIMEOUT)


def test_the_setting_is_read_when_the_connection_is_made(monkeypatch):
    monkeypatch.setenv("PACHSTUDIO_CLUSTER_TIMEOUT", "120")
    remote.Remote(None)
    assert (remote.CALL_TIMEOUT, remote.STREAM_IDLE, remote.FINISH_TIMEOUT) == (120, 240, 2400)
    monkeypatch.delenv("PACHSTUDIO_CLUSTER_TIMEOUT")
    remote.Remote(None)
    assert (remote.CALL_TIMEOUT, remote.STREAM_IDLE, remote.FINISH_TIMEOUT) == (30, 60, 600)


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_value_names_the_setting(monkeypatch, value):
    monkeypatch.setenv("PACHSTUDIO_CLUSTER_TIMEOUT", value)
    with pytest.raises(ValueError, match="PACHSTUDIO_CLUSTER_TIMEOUT"):
        remote.Remote(None)
