"""Secrets at rest: connection configs are encrypted with MultiFernet.

Keys come from ``ABOHUB_ENCRYPTION_KEYS`` (comma-separated Fernet keys, the
newest first: it encrypts, all of them decrypt). On the embedded default
(SQLite) with no keys set, a key is created once in ``var/encryption.key``
(readable by the owner only) so a laptop install just works; with a server
database the keys must be set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from config import Settings
from hub.domain.errors import AbohubError


class SecretsUnavailable(AbohubError):
    code = "secrets_unavailable"


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SecretsUnavailable("no encryption keys: set ABOHUB_ENCRYPTION_KEYS")
        try:
            self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        except ValueError as exc:
            raise SecretsUnavailable(
                "ABOHUB_ENCRYPTION_KEYS holds a value that is not a Fernet key "
                "(32 url-safe base64 bytes; make one with `abohub keys generate`)"
            ) from exc

    def encrypt(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as exc:
            raise SecretsUnavailable(
                "a stored secret cannot be decrypted with the configured keys; "
                "keep the old key in ABOHUB_ENCRYPTION_KEYS until `abohub keys rotate` has run"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key."""
        return self._fernet.rotate(token.encode()).decode()


def generate_key() -> str:
    return Fernet.generate_key().decode()


def box_for(settings: Settings) -> SecretBox:
    if settings.encryption_keys:
        return SecretBox(list(settings.encryption_keys))
    if not settings.is_sqlite:
        raise SecretsUnavailable(
            "set ABOHUB_ENCRYPTION_KEYS when ABOHUB_DATABASE_URL points at a server database"
        )
    return SecretBox([_local_key(settings.var_dir / "encryption.key")])


def _local_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key
