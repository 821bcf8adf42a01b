"""API keys: shown once, stored as a SHA-256 hash.

Keys are 32 random bytes, so a fast hash is as safe as a slow one here and
keeps every API request cheap to authenticate.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from hub.domain.errors import NotFound
from hub.domain.ids import new_id
from hub.services.uow import UnitOfWork
from hub.store.models import ApiKey

KEY_PREFIX = "abo_"


@dataclass(frozen=True)
class CreatedKey:
    id: str
    name: str
    secret: str  # shown once, never stored


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(name: str, uow: UnitOfWork) -> CreatedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with uow:
        key = ApiKey(
            id=new_id("key"), name=name, prefix=secret[:10], key_hash=hash_key(secret), created_at=uow.now
        )
        uow.session.add(key)
        uow.record("api_key.created", "api_key", key.id, data={"name": name, "prefix": key.prefix})
        uow.commit()
        return CreatedKey(key.id, name, secret)


def revoke_api_key(key_id: str, uow: UnitOfWork) -> None:
    with uow:
        key = uow.session.get(ApiKey, key_id)
        if key is None:
            raise NotFound(f"no API key {key_id}")
        key.revoked_at = uow.now
        uow.record("api_key.revoked", "api_key", key.id, data={"name": key.name})
        uow.commit()


def authenticate(secret: str, uow: UnitOfWork) -> ApiKey | None:
    with uow:
        key = uow.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(secret)))
        if key is None or key.revoked_at is not None:
            return None
        uow.session.expunge(key)
        return key
