"""Staff users of the admin: argon2 password hashes, server-side sessions, login throttling.

A signed-in browser holds a random session token (in the signed Flask session
cookie); the store keeps only its SHA-256, so logging out, disabling a user
or expiring the session ends it for good, whatever the cookie says.

Login throttling counts attempts in the database, so it holds across
gunicorn workers. It is keyed by *(username, client address)* and by client
address alone, never by username alone: someone guessing a name from their
own address cannot lock its owner out at theirs. An attempt is written
*before* the password is checked and deleted when it succeeds, so parallel
guesses each see the others.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from hub.domain.errors import InvalidRequest, NotFound
from hub.domain.ids import new_id
from hub.services.uow import UnitOfWork
from hub.store.models import LoginAttempt, StaffSession, StaffUser

ROLES = ("admin", "viewer")
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
MIN_PASSWORD_LENGTH = 10
SESSION_LIFETIME = timedelta(hours=12)
SESSIONS_KEPT = timedelta(days=30)  # ended sessions stay this long after expiry, then go
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME_AND_ADDRESS = 5
MAX_FAILURES_PER_ADDRESS = 30

_hasher = PasswordHasher()
# Verified against when the username is unknown, so an unknown name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True)
class StaffIdentity:
    """Who is signed in, as the admin needs it (no password hash)."""

    id: str
    username: str
    role: str
    locale: str
    session_token: str  # the cookie's value: Flask-Login's "alternative id"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class LoginOutcome(StrEnum):
    SIGNED_IN = "signed_in"
    REFUSED = "refused"  # unknown name, wrong password or disabled: the person is told the same
    THROTTLED = "throttled"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    identity: StaffIdentity | None = None
    retry_after: timedelta | None = None


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_new_user(username: str, password: str, role: str) -> None:
    problems: dict[str, list[str]] = {}
    if not USERNAME.fullmatch(username):
        problems["username"] = [
            "2 to 64 lower-case letters, digits or . _ @ -, starting with a letter or digit"
        ]
    if len(password) < MIN_PASSWORD_LENGTH:
        problems["password"] = [f"must be at least {MIN_PASSWORD_LENGTH} characters"]
    if role not in ROLES:
        problems["role"] = [f"must be one of {', '.join(ROLES)}"]
    if problems:
        raise InvalidRequest("the user is not valid", fields=problems)


def create_user(username: str, password: str, role: str, uow: UnitOfWork, locale: str = "da_DK") -> StaffUser:
    username = normalise_username(username)
    _check_new_user(username, password, role)
    with uow:
        if uow.session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
            raise InvalidRequest("the username is taken", fields={"username": ["is taken"]})
        user = StaffUser(
            id=new_id("usr"),
            username=username,
            password_hash=_hasher.hash(password),
            role=role,
            locale=locale,
            created_at=uow.now,
            updated_at=uow.now,
        )
        uow.session.add(user)
        uow.record("staff_user.created", "staff_user", user.id, data={"username": username, "role": role})
        uow.commit()
        uow.session.expunge(user)
        return user


def list_users(uow: UnitOfWork) -> list[StaffUser]:
    with uow:
        users = list(uow.session.scalars(select(StaffUser).order_by(StaffUser.username)))
        uow.session.expunge_all()
        return users


def _find(uow: UnitOfWork, username_or_id: str) -> StaffUser:
    found = uow.session.scalar(
        select(StaffUser)
        .where((StaffUser.id == username_or_id) | (StaffUser.username == normalise_username(username_or_id)))
        .with_for_update()
    )
    if found is None:
        raise NotFound(f"no user {username_or_id}")
    return found


def disable_user(username_or_id: str, uow: UnitOfWork) -> StaffUser:
    """Disable a user and end every session of theirs at once."""
    with uow:
        user = _find(uow, username_or_id)
        if user.disabled_at is None:
            user.disabled_at = user.updated_at = uow.now
            uow.session.execute(
                update(StaffSession)
                .where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
                .values(ended_at=uow.now)
            )
            uow.record("staff_user.disabled", "staff_user", user.id, data={"username": user.username})
        uow.commit()
        uow.session.expunge(user)
        return user


def enable_user(username_or_id: str, uow: UnitOfWork) -> StaffUser:
    with uow:
        user = _find(uow, username_or_id)
        if user.disabled_at is not None:
            user.disabled_at = None
            user.updated_at = uow.now
            uow.record("staff_user.enabled", "staff_user", user.id, data={"username": user.username})
        uow.commit()
        uow.session.expunge(user)
        return user


# --- signing in and out ---------------------------------------------------------------------------


def _failures(uow: UnitOfWork, since: datetime, address: str, username_hash: str | None = None) -> int:
    query = select(func.count()).where(
        LoginAttempt.client_address == address, LoginAttempt.attempted_at > since
    )
    if username_hash is not None:
        query = query.where(LoginAttempt.username_hash == username_hash)
    return int(uow.session.scalar(query) or 0)


def _note_attempt(uow: UnitOfWork, username: str, address: str) -> bool:
    """Write the attempt (committed, so other workers count it); False when over a limit."""
    since = uow.now - THROTTLE_WINDOW
    uow.session.execute(delete(LoginAttempt).where(LoginAttempt.attempted_at <= since))
    username_hash = _sha256(username)
    uow.session.add(LoginAttempt(username_hash=username_hash, client_address=address, attempted_at=uow.now))
    uow.session.commit()
    return (
        _failures(uow, since, address, username_hash) <= MAX_FAILURES_PER_USERNAME_AND_ADDRESS
        and _failures(uow, since, address) <= MAX_FAILURES_PER_ADDRESS
    )


def _password_matches(user: StaffUser | None, password: str) -> bool:
    """Runs argon2 even for an unknown name, so the answer takes as long either way."""
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return user is not None


def log_in(username: str, password: str, address: str, uow: UnitOfWork) -> LoginResult:
    """Check a login; on success open a session and record it. Every outcome is in the audit trail."""
    name = normalise_username(username)[:64]
    address = address[:64]
    with uow:
        if not _note_attempt(uow, name, address):
            return LoginResult(LoginOutcome.THROTTLED, retry_after=THROTTLE_WINDOW)
        user = uow.session.scalar(select(StaffUser).where(StaffUser.username == name))
        matches = _password_matches(user, password)
        if user is None or not matches or user.disabled_at is not None:
            reason = "unknown_user" if user is None else "disabled" if user.disabled_at else "wrong_password"
            uow.actor = "anonymous"
            uow.record(
                "staff_user.login_failed",
                "staff_user",
                user.id if user else "-",
                # An unknown name is not kept: it may be a password typed into the wrong field.
                data={"username": user and user.username, "client_address": address, "reason": reason},
            )
            uow.commit()
            return LoginResult(LoginOutcome.REFUSED)
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        uow.session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.username_hash == _sha256(name), LoginAttempt.client_address == address
            )
        )
        uow.session.execute(delete(StaffSession).where(StaffSession.expires_at < uow.now - SESSIONS_KEPT))
        token = secrets.token_urlsafe(32)
        uow.session.add(
            StaffSession(
                token_hash=_sha256(token),
                user_id=user.id,
                client_address=address,
                created_at=uow.now,
                expires_at=uow.now + SESSION_LIFETIME,
            )
        )
        user.last_login_at = uow.now
        uow.actor = f"staff:{user.id}"
        uow.record("staff_user.logged_in", "staff_user", user.id, data={"client_address": address})
        uow.commit()
        return LoginResult(
            LoginOutcome.SIGNED_IN, StaffIdentity(user.id, user.username, user.role, user.locale, token)
        )


def identity_for(token: str, uow: UnitOfWork) -> StaffIdentity | None:
    """The user of a live session token, or None once it ended, expired or its user was disabled."""
    with uow:
        row = uow.session.execute(
            select(StaffSession, StaffUser)
            .join(StaffUser, StaffUser.id == StaffSession.user_id)
            .where(StaffSession.token_hash == _sha256(token))
        ).one_or_none()
        if row is None:
            return None
        staff_session, user = row
        if staff_session.ended_at or staff_session.expires_at <= uow.now or user.disabled_at:
            return None
        return StaffIdentity(user.id, user.username, user.role, user.locale, token)


def log_out(identity: StaffIdentity, uow: UnitOfWork) -> None:
    """End the session on the server: its cookie no longer signs anyone in."""
    with uow:
        uow.session.execute(
            update(StaffSession)
            .where(StaffSession.token_hash == _sha256(identity.session_token))
            .values(ended_at=uow.now)
        )
        uow.record("staff_user.logged_out", "staff_user", identity.id)
        uow.commit()
