"""The transport table: every exception of the HTTP client named, most specific first, none
leaking an address."""

from __future__ import annotations

import errno
import inspect
import logging
import socket
import ssl
from typing import Any

import pytest

from genledger.core.failures import FailureKind, UpstreamFailure
from genledger.providers import h1, pool
from genledger.providers.pool import _connect_error
from genledger.providers.transport import TRANSPORT_RULES, Stalled, rule_for, transport_failure


def client_exceptions() -> list[type[BaseException]]:
    """Every exception class the client's modules define."""
    found = {
        cls
        for module in (h1, pool)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    return sorted(found, key=lambda cls: cls.__qualname__)


INSTALLED = client_exceptions()
NAMED = [rule.exception for rule in TRANSPORT_RULES]


def test_the_client_defines_its_exceptions():
    assert {h1.Disconnected, h1.MalformedResponse, pool.InvalidHeader} <= set(INSTALLED)


@pytest.mark.parametrize("cls", INSTALLED, ids=lambda cls: cls.__qualname__)
def test_every_exception_of_the_client_has_its_own_rule(cls):
    # A new exception fails here until someone decides what kind of failure it is.
    assert cls in NAMED, f"{cls.__module__}.{cls.__qualname__} is not in TRANSPORT_RULES"


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
    ("exc", "kind"),
    [
        (TimeoutError(), FailureKind.TIMEOUT),
        (Stalled("no chunk for 1s"), FailureKind.TIMEOUT),
        (h1.ConnectTimeout(), FailureKind.UNREACHABLE),
        (h1.ConnectError(errno.ECONNREFUSED, "refused"), FailureKind.UNREACHABLE),
        (h1.DNSError(), FailureKind.UNREACHABLE),
        (h1.Disconnected(), FailureKind.UNREACHABLE),
        (ConnectionResetError(errno.ECONNRESET, "reset"), FailureKind.UNREACHABLE),
        (BrokenPipeError(errno.EPIPE, "pipe"), FailureKind.UNREACHABLE),
        (ssl.SSLError(1, "bad record mac"), FailureKind.UNREACHABLE),
        (h1.BrokenBody(), FailureKind.INVALID_RESPONSE),
        (h1.MalformedResponse(), FailureKind.INVALID_RESPONSE),
        (h1.LineTooLong(), FailureKind.INVALID_RESPONSE),
        (h1.InvalidURL(), FailureKind.SERVER_ERROR),
        (h1.NotHttpURL(), FailureKind.SERVER_ERROR),
        (pool.InvalidHeader(), FailureKind.SERVER_ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_the_kinds_of_the_usual_failures(exc, kind):
    assert rule_for(exc).kind is kind


def factory(kind: FailureKind, message: str, **kwargs: Any) -> UpstreamFailure:
    return UpstreamFailure(kind, message, provider_name="Acme", **kwargs)


HOST, PORT = "10.1.2.3", 39903
URL = f"http://{HOST}:{PORT}/v1/chat/completions"

LEAKY = [
    pytest.param(
        _connect_error(
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), 5, f"{HOST}:{PORT}"
        ),
        FailureKind.UNREACHABLE,
        "cannot connect (connection refused)",
        id="refused",
    ),
    pytest.param(
        h1.DNSError(f"cannot resolve {HOST}:{PORT}"),
        FailureKind.UNREACHABLE,
        "DNS lookup failed",
        id="dns",
    ),
    pytest.param(
        _connect_error(ssl.SSLCertVerificationError(1, "certificate is not valid"), 5, f"{HOST}:{PORT}"),
        FailureKind.UNREACHABLE,
        "TLS certificate rejected",
        id="tls",
    ),
    pytest.param(
        h1.ConnectTimeout(f"Connection timeout to host {URL}"),
        FailureKind.UNREACHABLE,
        "connection timed out",
        id="connect-timeout",
    ),
    pytest.param(
        h1.Disconnected(f"Server disconnected: {URL}"),
        FailureKind.UNREACHABLE,
        "closed the connection",
        id="disconnected",
    ),
    pytest.param(h1.InvalidURL(URL), FailureKind.SERVER_ERROR, "invalid URL", id="invalid-url"),
    pytest.param(
        h1.BrokenBody(f"Response payload is not completed from {URL}"),
        FailureKind.INVALID_RESPONSE,
        "broken response body",
        id="payload",
    ),
]


@pytest.mark.parametrize(("exc", "kind", "reason"), LEAKY)
def test_the_caller_learns_the_provider_and_the_kind_never_the_address(exc, kind, reason, caplog):
    assert HOST in str(exc) or URL in str(exc)  # the exception's text would leak it
    with caplog.at_level(logging.WARNING, logger="genledger.providers"):
        failure = transport_failure(exc, factory, "Acme", answered=False)
    assert failure.kind is kind
    assert failure.message.startswith("Acme: ") and reason in failure.message
    assert type(exc).__name__ in failure.raw
    for shown in (failure.message, failure.raw):
        assert HOST not in shown and str(PORT) not in shown and "http" not in shown
    # The operator still gets the whole story.
    assert any(HOST in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (TimeoutError(), h1.ConnectTimeout),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), h1.DNSError),
        (ssl.SSLCertVerificationError(1, "self-signed certificate"), h1.CertificateError),
        (ssl.SSLError(1, "wrong version number"), h1.TLSError),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), h1.ConnectError),
        (OSError(errno.EHOSTUNREACH, "no route"), h1.ConnectError),
    ],
)
def test_a_failed_connection_attempt_is_named_by_what_failed(raised, expected):
    made = _connect_error(raised, 5, "example.com:443")
    assert type(made) is expected
    assert "example.com:443" in str(made)  # for the log


def test_a_cancelled_connection_attempt_stays_a_cancellation():
    import asyncio

    cancelled = asyncio.CancelledError()
    assert _connect_error(cancelled, 5, "example.com:443") is cancelled


def test_a_connection_that_breaks_after_the_status_line_broke_the_answer():
    exc = h1.Disconnected()
    assert transport_failure(exc, factory, "Acme", answered=False).kind is FailureKind.UNREACHABLE
    assert transport_failure(exc, factory, "Acme", answered=True).kind is FailureKind.INVALID_RESPONSE
    # A timeout stays a timeout, and says how long it waited.
    stalled = transport_failure(TimeoutError(), factory, "Acme", answered=True, limit=2.5)
    assert stalled.kind is FailureKind.TIMEOUT
    assert stalled.message == "Acme: timed out (nothing received for 2.5s)"


def test_our_own_stall_is_a_timeout_that_says_which_wait_ran_out():
    failure = transport_failure(Stalled("no chunk for 0.3s"), factory, "Acme", answered=True, limit=60)
    assert failure.kind is FailureKind.TIMEOUT
    assert failure.message == "Acme: timed out (no chunk for 0.3s)"
    assert failure.raw == "Stalled: no chunk for 0.3s"
