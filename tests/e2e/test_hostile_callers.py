"""Hostile callers on raw sockets: connections that send nothing, headers trickled a byte at a
time (slowloris), idle kept-alive connections, more connections than allowed. Each is cut off
by its timeout while honest requests keep being answered."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.gateway import GatewayServer, create_key

HEADER_S = 1.0  # header_timeout
BODY_S = 1.5  # body_timeout
KEEP_ALIVE_S = 1  # keep_alive_timeout
MAX_CONNECTIONS = 300
IDLE_CONNECTIONS = 200


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    server = GatewayServer.build(
        database_url=f"sqlite:///{tmp_path_factory.mktemp('callers')}/genledger.db",
        header_timeout=HEADER_S,
        body_timeout=BODY_S,
        keep_alive_timeout=KEEP_ALIVE_S,
        max_connections=MAX_CONNECTIONS,
    )
    with server:
        yield server


def connect(gateway: GatewayServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading whatever it sent first), or None."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_connections_that_send_nothing_are_closed_after_the_header_timeout(gateway):
    sockets = [connect(gateway) for _ in range(IDLE_CONNECTIONS)]
    try:
        # Honest requests are served meanwhile.
        assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200
        deadline = time.monotonic() + HEADER_S + 5
        for sock in sockets:
            assert closed_within(sock, max(deadline - time.monotonic(), 0.01)) is not None
    finally:
        for sock in sockets:
            sock.close()


def test_headers_trickled_a_byte_at_a_time_are_cut_off(gateway):
    sock = connect(gateway)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")
    started = time.monotonic()
    cut = False
    try:
        while time.monotonic() - started < HEADER_S + 5:
            sock.sendall(b"X")  # never a whole header line
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        cut = True
    took = time.monotonic() - started
    sock.close()
    assert cut and HEADER_S * 0.8 <= took < HEADER_S + 2


def test_a_complete_request_sent_slowly_but_in_time_is_answered(gateway):
    sock = connect(gateway)
    for part in (b"GET /health HTTP/1.1\r\n", b"Host: gateway\r\n", b"\r\n"):
        sock.sendall(part)
        time.sleep(HEADER_S / 5)
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.close()


@pytest.mark.parametrize(
    "request_line",
    [
        "GET /api/v1/generations?limit=\uff101 HTTP/1.1".encode(),  # raw non-ASCII, not %-encoded
        b"GET /api/v1/generations HTTP/9.9",
        b"NOT A REQUEST",
    ],
)
def test_a_request_http_cannot_parse_is_a_400_in_the_envelope(gateway, request_line: bytes):
    sock = connect(gateway)
    sock.sendall(request_line + b"\r\nHost: gateway\r\n\r\n")
    answer = b""
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["code"] == 400 and "HTTP/1.1 can parse" in error["message"]


def test_a_kept_alive_connection_is_closed_when_idle_and_when_its_next_request_trickles(gateway):
    sock = connect(gateway)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert (closed_within(sock, KEEP_ALIVE_S + 3) or 99) < KEEP_ALIVE_S + 2
    sock.close()

    sock = connect(gateway)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request's headers never end
    assert (closed_within(sock, HEADER_S + 3) or 99) < HEADER_S + 2
    sock.close()


def test_beyond_max_connections_requests_get_503_until_the_idle_ones_are_cut(gateway):
    sockets = [connect(gateway) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # the server has accepted them all
        with httpx.Client(timeout=5) as client:
            busy = client.get(gateway.url + "/health")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == 503
        deadline = time.monotonic() + HEADER_S + 5
        for sock in sockets:
            assert closed_within(sock, max(deadline - time.monotonic(), 0.01)) is not None
        assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def headers_of_a_body(gateway: GatewayServer) -> bytes:
    """A chat request's headers, with a real key (the body is read once the key is checked)."""
    secret = create_key(gateway.settings.database_url, "slow-body")
    return (
        b"POST /api/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + secret.encode() + b"\r\nContent-Length: 1000\r\n\r\n"
    )


def _caller_left_lines(gateway: GatewayServer, before: int) -> list[dict]:
    lines = [orjson.loads(line) for line in gateway.log_lines[before:]]
    return [line for line in lines if line["path"] == "/api/v1/chat/completions"]


def test_a_body_trickled_after_its_headers_is_cut_off_after_the_body_timeout(
    gateway, headers_of_a_body, caplog
):
    caplog.set_level(logging.INFO, logger="genledger.api")
    before = len(gateway.log_lines)
    sock = connect(gateway)
    started = time.monotonic()
    closed_after = None
    try:
        sock.sendall(headers_of_a_body + b"{")
        sock.settimeout(0.2)
        # A byte of body every 0.2 s, each well within any idle limit: the whole body is late.
        while time.monotonic() - started < BODY_S + 5:
            try:
                if sock.recv(65536) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed_after = time.monotonic() - started
                break
            try:
                sock.sendall(b" ")
            except OSError:
                closed_after = time.monotonic() - started
                break
        # Honest requests are served meanwhile and after.
        assert httpx.get(gateway.url + "/health", timeout=5).status_code == 200
    finally:
        sock.close()
    assert closed_after is not None and BODY_S - 0.3 < closed_after < BODY_S + 2, closed_after
    _until(lambda: _caller_left_lines(gateway, before))
    assert [line["status"] for line in _caller_left_lines(gateway, before)] == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "left before sending its whole request" in caplog.text


def test_a_caller_that_leaves_mid_body_is_a_499_not_an_error(gateway, headers_of_a_body, caplog):
    caplog.set_level(logging.INFO, logger="genledger.api")
    before = len(gateway.log_lines)
    with connect(gateway) as sock:
        sock.sendall(headers_of_a_body + b'{"model":')
        time.sleep(0.2)
    _until(lambda: _caller_left_lines(gateway, before))
    assert [line["status"] for line in _caller_left_lines(gateway, before)] == [499]
    assert "unhandled error" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def _until(condition, within: float = 5) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded"])
def test_a_forwarded_address_does_not_escape_the_auth_failure_limit(tmp_path, header: str):
    """The peer's address is the caller's: a client (or a reverse proxy passing its headers on)
    that names another address, loopback (exempt by default) or a fresh one per guess, is
    refused once the peer failed too often."""
    limits = {"auth_failures": 3, "auth_failure_window": 60, "auth_failures_exempt": []}
    with GatewayServer.build(database_url=f"sqlite:///{tmp_path}/genledger.db", limits=limits) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=5) as client:
            statuses = []
            for i in range(5):
                claimed = "127.0.0.1" if i % 2 else f"198.51.100.{i}"
                value = f"for={claimed}" if header == "Forwarded" else claimed
                guess = {"Authorization": f"Bearer sk-gl-v1-guess-{i}", header: value}
                statuses.append(client.get("/api/v1/key", headers=guess).status_code)
        lines = [orjson.loads(line) for line in gateway.log_lines]
    assert statuses == [401, 401, 401, 429, 429]
    assert {line["client"] for line in lines if line.get("path") == "/api/v1/key"} == {"127.0.0.1"}
