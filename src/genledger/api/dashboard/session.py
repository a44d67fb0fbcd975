"""The dashboard's session: a signed cookie naming the signed-in key, and its CSRF token.

The cookie holds the key's hash (never its secret), a CSRF token and an expiry, signed with
HMAC-SHA256 under the gateway's ``dashboard_secret``. It is HttpOnly, SameSite=Strict and
limited to ``/dashboard``. Every form that changes state carries the session's CSRF token;
the sign-in form, before there is a session, carries one from a short-lived signed cookie of
its own. A key that is disabled, rotated or deleted ends its sessions: each request looks the
hash up again (through the authenticator's two-second cache).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from genledger.core.records import record

SESSION_COOKIE = "genledger_session"
SIGN_IN_COOKIE = "genledger_sign_in"
SESSION_SECONDS = 12 * 3600
SIGN_IN_SECONDS = 3600
COOKIE_PATH = "/dashboard"


@record
class Session:
    key_hash: str
    csrf: str
    expires: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, purpose: str, payload: dict[str, Any]) -> str:
    """``payload`` as cookie text that only ``secret`` can have made, for ``purpose`` only."""
    body = _b64(orjson.dumps(payload))
    mac = hmac.new(secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def unsign(
    secret: bytes, purpose: str, text: str | None, *, now: float | None = None
) -> dict[str, Any] | None:
    """The payload of ``text`` if ``secret`` signed it for ``purpose`` and it has not expired."""
    if not text or text.count(".") != 1:
        return None
    body, mac = text.split(".")
    expected = hmac.new(secret, f"{purpose}.{body}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(_unb64(mac), expected):
            return None
        payload = orjson.loads(_unb64(body))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int):
        return None
    if payload["e"] < (time.time() if now is None else now):
        return None
    return payload


def read_session(request: Request, secret: bytes) -> Session | None:
    payload = unsign(secret, SESSION_COOKIE, request.cookies.get(SESSION_COOKIE))
    if payload is None or not isinstance(payload.get("k"), str) or not isinstance(payload.get("c"), str):
        return None
    return Session(payload["k"], payload["c"], payload["e"])


def _set(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def start_session(request: Request, response: Response, secret: bytes, key_hash: str) -> None:
    """A fresh session (and a fresh CSRF token) for ``key_hash``; the sign-in cookie is dropped."""
    expires = int(time.time()) + SESSION_SECONDS
    value = sign(secret, SESSION_COOKIE, {"k": key_hash, "c": secrets.token_urlsafe(32), "e": expires})
    _set(request, response, SESSION_COOKIE, value, SESSION_SECONDS)
    response.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def sign_in_token(request: Request, response: Response, secret: bytes) -> str:
    """The CSRF token of the sign-in form, kept in a signed cookie until the form comes back."""
    payload = unsign(secret, SIGN_IN_COOKIE, request.cookies.get(SIGN_IN_COOKIE))
    if payload is not None and isinstance(payload.get("c"), str):
        token: str = payload["c"]
        return token
    token = secrets.token_urlsafe(32)
    value = sign(secret, SIGN_IN_COOKIE, {"c": token, "e": int(time.time()) + SIGN_IN_SECONDS})
    _set(request, response, SIGN_IN_COOKIE, value, SIGN_IN_SECONDS)
    return token


def sign_in_token_matches(request: Request, secret: bytes, sent: str | None) -> bool:
    payload = unsign(secret, SIGN_IN_COOKIE, request.cookies.get(SIGN_IN_COOKIE))
    expected = payload.get("c") if payload is not None else None
    return isinstance(expected, str) and sent is not None and hmac.compare_digest(expected, sent)


def csrf_matches(session: Session, sent: str | None) -> bool:
    return sent is not None and hmac.compare_digest(session.csrf, sent)
