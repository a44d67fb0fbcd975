"""AuthFailures: a fixed window per address from its first failure, exempt addresses, a bounded table."""

from __future__ import annotations

from genledger.limits.auth_failures import AuthFailures


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_once_it_failed_limit_times_until_its_window_ends():
    clock = Clock()
    failures = AuthFailures(3, 60, clock=clock)
    for _ in range(2):
        failures.count("10.0.0.1")
    assert failures.retry_after("10.0.0.1") is None
    clock.now += 10
    failures.count("10.0.0.1")
    assert failures.retry_after("10.0.0.1") == 50
    assert failures.retry_after("10.0.0.2") is None  # per address
    clock.now += 50
    assert failures.retry_after("10.0.0.1") is None
    failures.count("10.0.0.1")  # a new window
    assert failures.retry_after("10.0.0.1") is None


def test_exempt_addresses_are_never_counted():
    failures = AuthFailures(1, 60, exempt=["127.0.0.1"], clock=Clock())
    failures.count("127.0.0.1")
    failures.count("::1")
    assert failures.retry_after("127.0.0.1") is None
    assert failures.retry_after("::1") == 60


def test_exempt_networks_match_every_address_in_them_however_it_is_written():
    failures = AuthFailures(1, 60, exempt=["10.0.0.0/8", "0:0:0:0:0:0:0:1", "192.168.1.7/24"], clock=Clock())
    for address in ("10.1.2.3", "::1", "0::1", "::ffff:10.9.9.9", "192.168.1.200"):
        failures.count(address)
        assert failures.exempt(address), address
        assert failures.retry_after(address) is None, address
    for address in ("11.0.0.1", "::2", "192.168.2.1", "testclient"):
        failures.count(address)
        assert not failures.exempt(address), address
    assert failures.retry_after("11.0.0.1") == 60
    assert not AuthFailures(1, 60).exempt("127.0.0.1")


def test_an_exempt_entry_written_ipv4_mapped_exempts_the_ipv4_caller():
    failures = AuthFailures(1, 60, exempt=["::ffff:127.0.0.1", "::ffff:10.0.0.0/104"], clock=Clock())
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.200.0.1"):
        assert failures.exempt(address), address
    assert not failures.exempt("127.0.0.2") and not failures.exempt("11.0.0.1")


def test_the_table_is_bounded_expired_entries_go_first():
    clock = Clock()
    failures = AuthFailures(1, 10, clock=clock, max_addresses=4)
    for i in range(3):
        failures.count(f"10.0.0.{i}")
    clock.now += 11  # those three expired
    failures.count("10.0.1.0")
    failures.count("10.0.1.1")  # full: the expired ones are dropped
    assert len(failures._counts) == 2
    for i in range(3):
        failures.count(f"10.0.2.{i}")
    failures.count("10.0.3.0")  # full of live entries: emptied, never grown past the bound
    assert len(failures._counts) <= 4
    assert failures.retry_after("10.0.3.0") == 10


def test_a_block_from_elsewhere_refuses_until_it_ends():
    clock = Clock()
    failures = AuthFailures(3, 60, clock=clock)
    failures.block("10.0.0.9", 12.5)
    assert failures.retry_after("10.0.0.9") == 12.5
    clock.now += 12.5
    assert failures.retry_after("10.0.0.9") is None
