"""Refusing callers that keep failing to authenticate: 429 before any work is done.

:func:`address_blocked` gives the edge (``api/edge.py``) the 429 for a request from a
blocked address (``metadata.retry_after``, and ``Retry-After``);
:func:`~genledger.api.errors.auth_failed` counts a failure where a 401 is rendered (the
error handler, the dashboard's sign-in). The address is the connection's peer: behind a reverse proxy every
caller shares the proxy's, so set ``limits.auth_failures = 0`` there and limit at the proxy.
"""

from __future__ import annotations

import math

from starlette.types import Scope

from genledger.errors import TooManyRequests
from genledger.limits.auth_failures import AuthFailureCounter


def address_blocked(failures: AuthFailureCounter, scope: Scope) -> TooManyRequests | None:
    """The 429 for the request of ``scope`` while ``failures`` says its address must wait; else ``None``."""
    client = scope.get("client")
    wait = failures.retry_after(client[0]) if client else None
    if wait is None:
        return None
    seconds = max(1, math.ceil(wait))
    return TooManyRequests(
        f"Too many failed authentications from this address; retry in {seconds}s",
        metadata={"retry_after": seconds, "reason": "authentication_failures"},
        headers={"Retry-After": str(seconds)},
    )
