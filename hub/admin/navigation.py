"""The admin's navigation: one entry per page, in order; a page adds itself here when it exists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavEntry:
    label: str
    endpoint: str
    section: str  # the endpoints of one page group share it (``admin.users`` covers ``admin.users_*``)


NAVIGATION: tuple[NavEntry, ...] = (
    NavEntry("Dashboard", "admin.dashboard", "admin.dashboard"),
    NavEntry("Customers", "admin.customers", "admin.customers"),
    NavEntry("Subscriptions", "admin.subscriptions", "admin.subscriptions"),
    NavEntry("Connections", "admin.connections", "admin.connections"),
    NavEntry("Mappings", "admin.mappings", "admin.mappings"),
    NavEntry("Conflicts", "admin.conflicts", "admin.conflicts"),
    NavEntry("Sync log", "admin.sync", "admin.sync"),
    NavEntry("Audit log", "admin.audit", "admin.audit"),
    NavEntry("Staff users", "admin.users", "admin.users"),
)


def is_current(entry: NavEntry, endpoint: str | None) -> bool:
    return bool(endpoint) and (endpoint == entry.section or str(endpoint).startswith(entry.section + "_"))
