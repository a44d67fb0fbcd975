"""Transport failures: the one table from aiohttp and asyncio exceptions to failure kinds.

An upstream call can fail below HTTP: DNS, a refused or reset connection, TLS, a timeout, a
body cut short. :data:`TRANSPORT_RULES` names each exception type, most specific first,
with its :class:`~genledger.core.failures.FailureKind` and the reason the caller is told;
:func:`transport_failure` applies the first rule that matches. A test walks every
``aiohttp.ClientError`` and ``HttpProcessingError`` subclass installed and proves each is
named here, so a new aiohttp exception fails the suite until someone decides its kind.

What the caller sees names the provider and the kind of failure, never where the provider
lives: aiohttp's messages carry the host, port or URL, so they go to the log only.
"""

from __future__ import annotations

import errno
import logging
import os
import ssl
from collections.abc import Callable

import aiohttp
from aiohttp import client_exceptions, http_exceptions

from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.core.records import record

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
    # Timeouts. aiohttp's are ServerConnectionErrors too, so they come before those.
    TransportRule(aiohttp.ConnectionTimeoutError, _UNREACHABLE, "connection timed out"),
    TransportRule(aiohttp.SocketTimeoutError, _TIMEOUT, "timed out"),
    TransportRule(aiohttp.ServerTimeoutError, _TIMEOUT, "timed out"),
    TransportRule(Stalled, _TIMEOUT, "timed out"),
    TransportRule(TimeoutError, _TIMEOUT, "timed out"),
    # No connection.
    TransportRule(aiohttp.ClientConnectorDNSError, _UNREACHABLE, "DNS lookup failed"),
    TransportRule(aiohttp.ClientConnectorCertificateError, _UNREACHABLE, "TLS certificate rejected"),
    TransportRule(aiohttp.ClientConnectorSSLError, _UNREACHABLE, "TLS handshake failed"),
    TransportRule(aiohttp.ClientSSLError, _UNREACHABLE, "TLS failed"),
    TransportRule(aiohttp.ClientProxyConnectionError, _UNREACHABLE, "cannot connect to the proxy"),
    TransportRule(client_exceptions.UnixClientConnectorError, _UNREACHABLE, "cannot connect"),
    TransportRule(aiohttp.ClientConnectorError, _UNREACHABLE, "cannot connect"),
    TransportRule(aiohttp.ServerFingerprintMismatch, _UNREACHABLE, "TLS fingerprint mismatch"),
    # The connection broke.
    TransportRule(aiohttp.ServerDisconnectedError, _UNREACHABLE, "the provider closed the connection"),
    TransportRule(aiohttp.ClientConnectionResetError, _UNREACHABLE, "connection reset"),
    TransportRule(aiohttp.ClientOSError, _UNREACHABLE, "connection failed"),
    TransportRule(aiohttp.ServerConnectionError, _UNREACHABLE, "connection lost"),
    TransportRule(aiohttp.ClientConnectionError, _UNREACHABLE, "connection failed"),
    TransportRule(aiohttp.UploadAbortedError, _UNREACHABLE, "the request was not fully sent"),
    # An answer we cannot use.
    TransportRule(aiohttp.ClientPayloadError, _INVALID, "broken response body"),
    TransportRule(aiohttp.ContentTypeError, _INVALID, "unexpected content type"),
    TransportRule(aiohttp.TooManyRedirects, _INVALID, "too many redirects"),
    TransportRule(aiohttp.ClientHttpProxyError, _UNREACHABLE, "the proxy refused the request"),
    TransportRule(aiohttp.WSServerHandshakeError, _INVALID, "websocket handshake failed"),
    TransportRule(aiohttp.ClientResponseError, _INVALID, "invalid response"),
    TransportRule(aiohttp.InvalidUrlRedirectClientError, _INVALID, "redirect to an invalid URL"),
    TransportRule(aiohttp.NonHttpUrlRedirectClientError, _INVALID, "redirect to a non-HTTP URL"),
    TransportRule(aiohttp.RedirectClientError, _INVALID, "bad redirect"),
    TransportRule(http_exceptions.LineTooLong, _INVALID, "oversized line"),
    TransportRule(http_exceptions.HttpProcessingError, _INVALID, "malformed HTTP"),
    # Our configuration.
    TransportRule(aiohttp.InvalidUrlClientError, _CONFIG, "invalid base_url"),
    TransportRule(aiohttp.NonHttpUrlClientError, _CONFIG, "base_url is not an HTTP URL"),
    TransportRule(aiohttp.InvalidURL, _CONFIG, "invalid URL"),
    # Anything aiohttp adds later, until a rule names it.
    TransportRule(aiohttp.ClientError, _UNREACHABLE, "request failed"),
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
