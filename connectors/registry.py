"""Finding connector plug-ins through the entry-point group ``abohub.connectors``."""

from __future__ import annotations

from importlib.metadata import entry_points

from connectors.base import Connector

GROUP = "abohub.connectors"


class UnknownConnector(LookupError):
    """No installed connector has this name."""


def available() -> dict[str, type[Connector]]:
    """Every installed connector, by name."""
    found: dict[str, type[Connector]] = {}
    for entry in entry_points(group=GROUP):
        connector = entry.load()
        if not (isinstance(connector, type) and issubclass(connector, Connector)):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not a Connector subclass")
        found[entry.name] = connector
    return found


def load(name: str) -> type[Connector]:
    installed = available()
    try:
        return installed[name]
    except KeyError:
        names = ", ".join(sorted(installed)) or "none"
        raise UnknownConnector(f"no connector named {name!r} is installed (installed: {names})") from None
