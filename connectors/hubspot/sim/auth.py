"""Private-app tokens and OAuth (authorization code and refresh token grants).

Private-app tokens never expire. OAuth access tokens live ``access_token_ttl``
seconds on the simulator clock (so a test can expire them by advancing it);
refreshing hands out a new access token and the same refresh token, and older
access tokens stay valid until they expire, as in HubSpot.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field

from connectors.hubspot.sim import errors
from connectors.hubspot.sim.clock import SimClock, expired_for, iso

AUTH_CODE_TTL_S = 600
DEFAULT_SCOPES = (
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
)


@dataclass(frozen=True)
class Principal:
    """Who made a request: ``private_app`` or ``oauth``, and the key its rate limits are counted under."""

    kind: str
    limit_key: str
    hint: str  # the last characters of the token, for logs


@dataclass
class _AccessToken:
    expires_ms: int
    refresh_token: str
    scopes: tuple[str, ...]


@dataclass
class _Grant:
    scopes: tuple[str, ...]
    redirect_uri: str | None
    expires_ms: int = 0
    used: bool = False


@dataclass
class Auth:
    clock: SimClock
    client_id: str
    client_secret: str
    portal_id: int
    app_id: int
    access_token_ttl: int = 1800
    private_app_tokens: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _access: dict[str, _AccessToken] = field(default_factory=dict, repr=False)
    _refresh: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _codes: dict[str, _Grant] = field(default_factory=dict, repr=False)

    # -------------------------------------------------------------- requests
    def authenticate(self, authorization: str | None) -> Principal:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise errors.unauthenticated()
        token = authorization[7:].strip()
        if token in self.private_app_tokens:
            return Principal("private_app", "pat:" + _digest(token), token[-4:])
        with self._lock:
            entry = self._access.get(token)
        if entry is None:
            raise errors.unauthenticated()
        now = self.clock.now_ms()
        if now >= entry.expires_ms:
            raise errors.expired(expired_for(now, entry.expires_ms), iso(entry.expires_ms))
        return Principal("oauth", f"oauth:{self.client_id}:{self.portal_id}", token[-4:])

    # ----------------------------------------------------------------- OAuth
    def issue_code(self, redirect_uri: str | None = None, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> str:
        """What the authorize page would hand the redirect URI after the user consents."""
        code = "code-" + secrets.token_urlsafe(18)
        with self._lock:
            self._codes[code] = _Grant(
                tuple(scopes), redirect_uri, self.clock.now_ms() + AUTH_CODE_TTL_S * 1000
            )
        return code

    def token(self, form: dict[str, str]) -> dict[str, object]:
        """``POST /oauth/v1/token`` (form-encoded)."""
        grant_type = form.get("grant_type")
        if grant_type not in ("authorization_code", "refresh_token"):
            raise errors.oauth_error("BAD_GRANT_TYPE", f"unsupported grant_type: {grant_type}")
        if form.get("client_id") != self.client_id:
            raise errors.oauth_error("BAD_CLIENT_ID", "missing or unknown client id")
        if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
            raise errors.oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        with self._lock:
            if grant_type == "authorization_code":
                grant = self._codes.get(form.get("code", ""))
                if grant is None or grant.used:
                    raise errors.oauth_error("BAD_AUTH_CODE", "missing or unknown auth code")
                if self.clock.now_ms() >= grant.expires_ms:
                    raise errors.oauth_error("EXPIRED_AUTH_CODE", "auth code is expired")
                if grant.redirect_uri is not None and form.get("redirect_uri") != grant.redirect_uri:
                    raise errors.oauth_error(
                        "BAD_REDIRECT_URI", "redirect_uri does not match the auth request"
                    )
                grant.used = True
                refresh_token = "rt-" + secrets.token_urlsafe(24)
                self._refresh[refresh_token] = grant.scopes
            else:
                refresh_token = form.get("refresh_token", "")
                if refresh_token not in self._refresh:
                    raise errors.oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
            access_token = "CN" + secrets.token_urlsafe(40)
            scopes = self._refresh[refresh_token]
            self._access[access_token] = _AccessToken(
                self.clock.now_ms() + self.access_token_ttl * 1000, refresh_token, scopes
            )
        return {
            "token_type": "bearer",
            "refresh_token": refresh_token,
            "access_token": access_token,
            "expires_in": self.access_token_ttl,
        }

    def token_info(self, token: str) -> dict[str, object]:
        """``GET /oauth/v1/access-tokens/{token}``."""
        with self._lock:
            entry = self._access.get(token)
        now = self.clock.now_ms()
        if entry is None or now >= entry.expires_ms:
            raise errors.ApiError(
                404, errors.body("The access token is expired or not found", "EXPIRED_AUTHENTICATION")
            )
        return {
            "token": token,
            "user": "simulator@example.com",
            "hub_domain": "simulated.hubspot.example",
            "scopes": list(entry.scopes),
            "hub_id": self.portal_id,
            "app_id": self.app_id,
            "expires_in": max(0, (entry.expires_ms - now) // 1000),
            "user_id": 1,
            "token_type": "access",
        }

    def revoke_refresh_token(self, token: str) -> bool:
        with self._lock:
            scopes = self._refresh.pop(token, None)
            for access, entry in list(self._access.items()):
                if entry.refresh_token == token:
                    del self._access[access]
        return scopes is not None

    def expire_access_tokens(self) -> None:
        """Make every issued OAuth access token expired now (a test shortcut)."""
        now = self.clock.now_ms()
        with self._lock:
            for entry in self._access.values():
                entry.expires_ms = min(entry.expires_ms, now)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]
