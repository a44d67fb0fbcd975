"""The transport table: every aiohttp exception named, most specific first, none leaking an address."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from typing import Any

import aiohttp
import multidict
import pytest
import yarl
from aiohttp import http_exceptions

from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.providers.transport import TRANSPORT_RULES, rule_for, transport_failure


def subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    """``root`` and every class below it, as installed; only aiohttp's own."""
    found = {root}
    for sub in root.__subclasses__():
        found |= subclasses(sub)
    return {cls for cls in found if cls.__module__.startswith("aiohttp")}


INSTALLED = sorted(subclasses(aiohttp.ClientError), key=lambda cls: cls.__qualname__)
PARSING = sorted(subclasses(http_exceptions.HttpProcessingError), key=lambda cls: cls.__qualname__)
NAMED = [rule.exception for rule in TRANSPORT_RULES]


@pytest.mark.parametrize("cls", INSTALLED, ids=lambda cls: cls.__qualname__)
def test_every_installed_aiohttp_client_error_has_its_own_rule(cls):
    # A new aiohttp exception fails here until someone decides what kind of failure it is.
    assert cls in NAMED, f"{cls.__module__}.{cls.__qualname__} is not in TRANSPORT_RULES"


@pytest.mark.parametrize("cls", PARSING, ids=lambda cls: cls.__qualname__)
def test_every_http_parsing_error_is_an_invalid_response(cls):
    # aiohttp wraps most of these in ClientResponseError or ClientPayloadError; a stream's
    # readline raises LineTooLong bare. Whichever escapes, the answer was unusable.
    assert rule_for(cls.__new__(cls)).kind is FailureKind.INVALID_RESPONSE


def test_no_rule_is_shadowed_by_an_earlier_one():
    for later, rule in enumerate(TRANSPORT_RULES):
        for earlier in TRANSPORT_RULES[:later]:
            assert not issubclass(rule.exception, earlier.exception), (
                f"{rule.exception.__name__} is caught by the earlier rule for {earlier.exception.__name__}"
            )


@pytest.mark.parametrize("cls", [*INSTALLED, TimeoutError], ids=lambda cls: cls.__qualname__)
def test_each_exception_maps_through_its_own_rule(cls):
    # The first matching rule is the class's own: nothing more general comes before it.
    rule = next(rule for rule in TRANSPORT_RULES if issubclass(cls, rule.exception))
    assert rule.exception is cls
    assert isinstance(rule.kind, FailureKind) and rule.reason


def test_rules_are_unique_and_exceptions_without_a_rule_are_refused():
    assert len(set(NAMED)) == len(NAMED)
    with pytest.raises(LookupError):
        rule_for(KeyError("not a transport failure"))


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (TimeoutError, FailureKind.TIMEOUT),
        (aiohttp.SocketTimeoutError, FailureKind.TIMEOUT),
        (aiohttp.ServerTimeoutError, FailureKind.TIMEOUT),
        (aiohttp.ConnectionTimeoutError, FailureKind.UNREACHABLE),
        (aiohttp.ClientConnectorError, FailureKind.UNREACHABLE),
        (aiohttp.ClientConnectorDNSError, FailureKind.UNREACHABLE),
        (aiohttp.ServerDisconnectedError, FailureKind.UNREACHABLE),
        (aiohttp.ClientOSError, FailureKind.UNREACHABLE),
        (aiohttp.ClientPayloadError, FailureKind.INVALID_RESPONSE),
        (aiohttp.ContentTypeError, FailureKind.INVALID_RESPONSE),
        (aiohttp.TooManyRedirects, FailureKind.INVALID_RESPONSE),
        (aiohttp.ClientResponseError, FailureKind.INVALID_RESPONSE),
        (http_exceptions.LineTooLong, FailureKind.INVALID_RESPONSE),
        (aiohttp.InvalidURL, FailureKind.SERVER_ERROR),
        (aiohttp.InvalidUrlClientError, FailureKind.SERVER_ERROR),
    ],
)
def test_the_kinds_of_the_usual_failures(cls, kind):
    assert rule_for(cls.__new__(cls)).kind is kind


def factory(kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
    return UpstreamFailure(kind, message, provider_name="Acme", **kwargs)


HOST, PORT = "10.1.2.3", 39903
KEY = aiohttp.client_reqrep.ConnectionKey(HOST, PORT, False, True, None, None, None)
URL = f"http://{HOST}:{PORT}/v1/chat/completions"


def _response_error(cls: type[aiohttp.ClientResponseError]) -> aiohttp.ClientResponseError:
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL as Url

    info = aiohttp.RequestInfo(Url(URL), "POST", CIMultiDictProxy(CIMultiDict()), Url(URL))
    return cls(info, (), status=502, message=f"bad gateway at {URL}")


LEAKY = [
    pytest.param(
        aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")),
        FailureKind.UNREACHABLE,
        "connection refused",
        id="refused",
    ),
    pytest.param(
        aiohttp.ClientConnectorDNSError(KEY, socket.gaierror(-2, f"Name or service not known: {HOST}")),
        FailureKind.UNREACHABLE,
        "DNS lookup failed",
        id="dns",
    ),
    pytest.param(
        aiohttp.ClientConnectorCertificateError(
            KEY, ssl.SSLCertVerificationError(1, f"certificate is not valid for '{HOST}:{PORT}'")
        ),
        FailureKind.UNREACHABLE,
        "TLS certificate rejected",
        id="tls",
    ),
    pytest.param(
        aiohttp.ConnectionTimeoutError(f"Connection timeout to host {URL}"),
        FailureKind.UNREACHABLE,
        "connection timed out",
        id="connect-timeout",
    ),
    pytest.param(
        aiohttp.ServerDisconnectedError(f"Server disconnected: {URL}"),
        FailureKind.UNREACHABLE,
        "closed the connection",
        id="disconnected",
    ),
    pytest.param(aiohttp.InvalidURL(URL), FailureKind.SERVER_ERROR, "invalid URL", id="invalid-url"),
    pytest.param(
        _response_error(aiohttp.TooManyRedirects), FailureKind.INVALID_RESPONSE, "redirects", id="redirects"
    ),
    pytest.param(
        aiohttp.ClientPayloadError(f"Response payload is not completed from {URL}"),
        FailureKind.INVALID_RESPONSE,
        "broken response body",
        id="payload",
    ),
]


@pytest.mark.parametrize(("exc", "kind", "reason"), LEAKY)
def test_the_caller_learns_the_provider_and_the_kind_never_the_address(exc, kind, reason, caplog):
    assert HOST in repr(exc) or HOST in str(exc) or URL in str(exc)  # aiohttp's own text would leak it
    with caplog.at_level(logging.WARNING, logger="genledger.providers"):
        failure = transport_failure(exc, factory, "Acme", answered=False)
    assert failure.kind is kind
    assert failure.message.startswith("Acme: ") and reason in failure.message
    assert type(exc).__name__ in failure.raw
    for shown in (failure.message, failure.raw):
        assert HOST not in shown and str(PORT) not in shown and "http" not in shown
    # The operator still gets the whole story.
    assert any(HOST in record.getMessage() for record in caplog.records)


def test_a_connection_that_breaks_after_the_status_line_broke_the_answer():
    exc = aiohttp.ServerDisconnectedError()
    assert transport_failure(exc, factory, "Acme", answered=False).kind is FailureKind.UNREACHABLE
    assert transport_failure(exc, factory, "Acme", answered=True).kind is FailureKind.INVALID_RESPONSE
    # A timeout stays a timeout, and says how long it waited.
    stalled = transport_failure(aiohttp.SocketTimeoutError(), factory, "Acme", answered=True, limit=2.5)
    assert stalled.kind is FailureKind.TIMEOUT
    assert stalled.message == "Acme: timed out (nothing received for 2.5s)"


def test_our_own_stall_is_a_timeout_that_says_which_wait_ran_out():
    from genledger.providers.transport import Stalled

    failure = transport_failure(Stalled("no chunk for 0.3s"), factory, "Acme", answered=True, limit=60)
    assert failure.kind is FailureKind.TIMEOUT
    assert failure.message == "Acme: timed out (no chunk for 0.3s)"
    assert failure.raw == "Stalled: no chunk for 0.3s"


def test_the_log_never_shows_the_request_headers_and_so_never_the_provider_key(caplog):
    secret = "sk-provider-canary-5e4d"
    url = yarl.URL("http://127.0.0.1:9/v1/chat/completions")
    headers = multidict.CIMultiDictProxy(multidict.CIMultiDict({"Authorization": f"Bearer {secret}"}))
    request = aiohttp.RequestInfo(url, "POST", headers, url)
    exc = aiohttp.ClientResponseError(request, (), status=400, message="Got more than 8190 bytes")
    with caplog.at_level(logging.WARNING, logger="genledger.providers"):
        failure = transport_failure(exc, factory, "Acme", answered=True)
    assert failure.kind is FailureKind.INVALID_RESPONSE
    assert "Got more than 8190 bytes" in caplog.text
    assert secret not in caplog.text
