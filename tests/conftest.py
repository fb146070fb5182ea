"""Shared fixtures. Each part of the appliance has a plugin module under tests/plugins/."""
import pathlib

pytest_plugins = sorted(
    f"plugins.{p.stem}" for p in (pathlib.Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)
