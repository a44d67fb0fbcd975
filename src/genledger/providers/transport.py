"""Transport failures: the one table from the HTTP client's exceptions to failure kinds.

An upstream call can fail below HTTP: DNS, a refused or reset connection, TLS, a timeout, a
body cut short. :data:`TRANSPORT_RULES` names each exception type, most specific first,
with its :class:`~genledger.core.failures.FailureKind` and the reason the caller is told;
:func:`transport_failure` applies the first rule that matches. A test walks every exception
class of :mod:`genledger.providers.h1` and :mod:`genledger.providers.pool` and proves each is
named here, so a new one fails the suite until someone decides its kind.

What the caller sees names the provider and the kind of failure, never where the provider
lives: the exceptions' messages may carry the host or the URL, so they go to the log only.
"""

from __future__ import annotations

import errno
import logging
import os
import ssl
from collections.abc import Callable

from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.records import record
from genledger.providers import h1, pool

log = logging.getLogger("genledger.providers")

FailureFactory = Callable[..., UpstreamFailure]

_UNREACHABLE = FailureKind.UNREACHABLE
_TIMEOUT = FailureKind.TIMEOUT
_INVALID = FailureKind.INVALID_RESPONSE
_CONFIG = FailureKind.SERVER_ERROR  # our configuration is wrong, not the caller's request


class Stalled(TimeoutError):
    """A wait of ours ran out: the provider sent nothing for longer than a configured limit.

    Its message is ours (it names the wait and the limit), so the caller may read it.
    """


@record
class TransportRule:
    """Exceptions of type ``exception`` are failures of ``kind``; the caller reads ``reason``."""

    exception: type[BaseException]
    kind: FailureKind
    reason: str


TRANSPORT_RULES: tuple[TransportRule, ...] = (
    # Timeouts. Every TimeoutError is an OSError, so they come before the connection's.
    TransportRule(h1.ConnectTimeout, _UNREACHABLE, "connection timed out"),
    TransportRule(Stalled, _TIMEOUT, "timed out"),
    TransportRule(TimeoutError, _TIMEOUT, "timed out"),
    # No connection.
    TransportRule(h1.DNSError, _UNREACHABLE, "DNS lookup failed"),
    TransportRule(h1.CertificateError, _UNREACHABLE, "TLS certificate rejected"),
    TransportRule(h1.TLSError, _UNREACHABLE, "TLS handshake failed"),
    TransportRule(h1.ConnectError, _UNREACHABLE, "cannot connect"),
    # The connection broke.
    TransportRule(h1.Disconnected, _UNREACHABLE, "the provider closed the connection"),
    TransportRule(ConnectionResetError, _UNREACHABLE, "connection reset"),
    TransportRule(ssl.SSLError, _UNREACHABLE, "TLS failed"),
    TransportRule(OSError, _UNREACHABLE, "connection failed"),
    # An answer we cannot use.
    TransportRule(h1.LineTooLong, _INVALID, "oversized line"),
    TransportRule(h1.MalformedResponse, _INVALID, "malformed HTTP"),
    TransportRule(h1.BrokenBody, _INVALID, "broken response body"),
    # Our configuration.
    TransportRule(h1.NotHttpURL, _CONFIG, "base_url is not an HTTP URL"),
    TransportRule(h1.InvalidURL, _CONFIG, "invalid URL"),
    TransportRule(pool.InvalidHeader, _CONFIG, "invalid provider header"),
    # Anything the client adds later, until a rule names it.
    TransportRule(h1.HttpClientError, _UNREACHABLE, "request failed"),
)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = tuple(rule.exception for rule in TRANSPORT_RULES)
"""Every exception type the table maps: what an ``except`` around a transport call catches."""


def rule_for(exc: BaseException) -> TransportRule:
    """The first rule whose type ``exc`` is an instance of; LookupError if none."""
    for rule in TRANSPORT_RULES:
        if isinstance(exc, rule.exception):
            return rule
    raise LookupError(f"no transport rule for {type(exc).__name__}")


def transport_failure(
    exc: BaseException,
    failure: FailureFactory,
    provider_name: str,
    *,
    answered: bool,
    limit: float | None = None,
) -> UpstreamFailure:
    """The failure ``exc`` stands for, told without the provider's address; logs the whole of it.

    ``answered``: the provider's status line had arrived, so a connection that breaks now
    broke its answer (INVALID_RESPONSE, not UNREACHABLE). ``limit``: the seconds a timeout
    waited, quoted in the message.
    """
    rule = rule_for(exc)
    kind = rule.kind
    if answered and kind is _UNREACHABLE:
        kind = _INVALID
    detail = _detail(exc)
    if detail is None and kind is _TIMEOUT and limit is not None:
        detail = f"nothing received for {limit:g}s"
    # str(), never repr(): a ClientResponseError's repr shows the request's headers, and with
    # them the provider's API key.
    log.warning("%s: %s: %s: %s", provider_name, rule.reason, type(exc).__name__, exc)
    message = f"{provider_name}: {rule.reason}" + (f" ({detail})" if detail else "")
    raw = f"{type(exc).__name__}: {detail or rule.reason}"
    return failure(kind, message, raw=raw)


def _detail(exc: BaseException) -> str | None:
    """What more ``exc`` says that is safe to show: our own words, an errno's name, never an address."""
    if isinstance(exc, Stalled):
        return str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        # The number, not exc.strerror: some exceptions put the host there.
        code = exc.errno
        if isinstance(code, int) and code in errno.errorcode:
            return os.strerror(code).lower()
    return None
