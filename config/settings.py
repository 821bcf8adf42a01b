"""Abohub's settings, parsed strictly from ``ABOHUB_*`` environment variables.

Every setting has one name, one parser and one default. An unknown ``ABOHUB_*``
variable is an error (a typo must not silently fall back to a default), and a
value that does not parse names the variable and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PREFIX = "ABOHUB_"


class SettingsError(ValueError):
    """A setting is missing, unknown or malformed."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _day_list(raw: str) -> tuple[int, ...]:
    days = tuple(int(part) for part in raw.split(",") if part.strip())
    if not days or any(d <= 0 for d in days) or list(days) != sorted(set(days)):
        raise ValueError("must be increasing positive day numbers separated by commas, e.g. 1,3,5,7")
    return days


def _currency(raw: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", raw):
        raise ValueError("must be an ISO 4217 code in capitals, e.g. DKK")
    return raw


def _timezone(raw: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone name, e.g. Europe/Copenhagen") from exc
    return raw


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return raw

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _key_prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", raw):
        raise ValueError("must be 1 to 40 letters, digits or dashes")
    return raw


def _prefix(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9-]{0,12}", raw):
        raise ValueError("must be at most 12 letters, digits or dashes")
    return raw


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one Abohub installation."""

    database_url: str
    secret_key: str
    redis_url: str | None = None
    encryption_keys: tuple[str, ...] = ()
    var_dir: Path = Path("var")
    default_currency: str = "DKK"
    billing_timezone: str = "UTC"
    invoice_prefix: str = "INV-"
    credit_note_prefix: str = "CN-"
    dunning_retry_days: tuple[int, ...] = (1, 3, 5, 7)
    dunning_final_action: str = "cancel"
    billing_batch_size: int = 500
    # Jobs (jobs/runtime.py): attempts and growing delays, the lease that bounds how long a
    # job whose worker died waits before it runs again, the hard time limit of one run.
    job_max_attempts: int = 8
    job_retry_base_seconds: int = 10
    job_retry_cap_seconds: int = 3600
    job_lease_seconds: int = 60
    job_time_limit_seconds: int = 900
    sync_repair_delay_seconds: int = 120
    # How long a write whose answer timed out may still land at the vendor; the record's next write
    # waits that long after it (HubSpot's gateway gives up on a request well within two minutes).
    sync_late_write_seconds: int = 120
    connector_timeout_seconds: int = 30
    proxy_hops: int = 0  # reverse proxies in front that set X-Forwarded-*; 0 trusts none
    redis_prefix: str = "abohub"
    log_level: str = "INFO"
    log_json: bool = False
    testing: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "database_url": str,
    "secret_key": str,
    "redis_url": str,
    "encryption_keys": lambda raw: tuple(k.strip() for k in raw.split(",") if k.strip()),
    "var_dir": Path,
    "default_currency": _currency,
    "billing_timezone": _timezone,
    "invoice_prefix": _prefix,
    "credit_note_prefix": _prefix,
    "dunning_retry_days": _day_list,
    "dunning_final_action": _choice("cancel", "leave_past_due"),
    "billing_batch_size": _positive_int,
    "job_max_attempts": _positive_int,
    "job_retry_base_seconds": _positive_int,
    "job_retry_cap_seconds": _positive_int,
    "job_lease_seconds": _positive_int,
    "job_time_limit_seconds": _positive_int,
    "sync_repair_delay_seconds": _positive_int,
    "sync_late_write_seconds": _positive_int,
    "connector_timeout_seconds": _positive_int,
    "proxy_hops": _count,
    "redis_prefix": _key_prefix,
    "log_level": _choice("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_json": _bool,
    "testing": _bool,
}

_SECRET_SETTINGS = {"secret_key", "encryption_keys", "database_url", "redis_url"}
_DEV_SECRET_KEY = "abohub-development-secret-key-change-me"  # noqa: S105 - refused outside development


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, then apply ``overrides`` (used by tests)."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)}
    unknown = sorted(
        name for name in env if name.startswith(PREFIX) and name[len(PREFIX) :].lower() not in known
    )
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}; known settings are "
            + ", ".join(PREFIX + n.upper() for n in sorted(known))
        )
    values: dict[str, Any] = {}
    for name in known:
        raw = env.get(PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        try:
            values[name] = _PARSERS[name](raw)
        except ValueError as exc:
            shown = "<hidden>" if name in _SECRET_SETTINGS else repr(raw)
            raise SettingsError(f"{PREFIX}{name.upper()}={shown}: {exc}") from None
    values.update(overrides)
    var_dir = Path(values.get("var_dir", Path("var")))
    values.setdefault("database_url", f"sqlite:///{(var_dir / 'abohub.db').resolve()}")
    values.setdefault("secret_key", _DEV_SECRET_KEY)
    settings = Settings(**values)
    if not settings.is_sqlite and settings.secret_key == _DEV_SECRET_KEY and not settings.testing:
        raise SettingsError(
            f"{PREFIX}SECRET_KEY must be set when {PREFIX}DATABASE_URL points at a server database"
        )
    return settings
