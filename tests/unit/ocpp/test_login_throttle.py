"""LoginThrottle: free failures, doubling blocks up to the cap, per identity and per address, forgetting."""

from csms.ocpp.throttle import Backoff, LoginThrottle


def test_identity_blocks_after_free_failures_and_doubles() -> None:
    t = LoginThrottle(identity=Backoff(free=3, base_s=1, max_s=8), address=Backoff(free=100))
    now = 0.0
    for _ in range(3):
        assert t.retry_after_s("CP", "10.0.0.1", now) == 0
        t.failed("CP", "10.0.0.1", now)
    assert t.retry_after_s("CP", "10.0.0.1", now) == 0  # 3 free failures
    waits = []
    for _ in range(5):
        t.failed("CP", "10.0.0.1", now)
        waits.append(t.retry_after_s("CP", "10.0.0.1", now))
        now += waits[-1]  # try again exactly when allowed
    assert waits == [1, 2, 4, 8, 8]
    assert t.retry_after_s("OTHER", "10.0.0.1", now) == 0  # another identity is not blocked
    assert t.refused == 5


def test_success_clears_the_identity_not_the_address() -> None:
    t = LoginThrottle(identity=Backoff(free=0, base_s=5), address=Backoff(free=0, base_s=1))
    t.failed("CP", "a", 0.0)
    assert t.retry_after_s("CP", "a", 0.0) == 5
    t.succeeded("CP", "a")
    assert t.retry_after_s("CP", "a", 0.0) == 1  # the address's own block remains
    assert t.retry_after_s("CP", "b", 0.0) == 0


def test_unknown_identities_count_against_the_address() -> None:
    t = LoginThrottle(address=Backoff(free=2, base_s=10))
    for i in range(3):
        t.failed(None, "a", 0.0)
    assert t.retry_after_s("ANY", "a", 0.0) == 10
    assert t.retry_after_s("ANY", "b", 0.0) == 0


def test_records_are_forgotten_and_bounded() -> None:
    t = LoginThrottle(identity=Backoff(free=1, base_s=1, forget_s=60), address=Backoff(free=100), max_keys=4)
    t.failed("CP", "a", 0.0)
    t.failed("CP", "a", 100.0)  # the first failure was forgotten: this is the first again (free)
    assert t.retry_after_s("CP", "a", 100.0) == 0
    for i in range(10):
        t.failed(f"X{i}", f"addr{i}", 0.0)
    assert len(t._records) == 4


def test_backoff_cap_with_huge_counts() -> None:
    assert Backoff(free=0, base_s=1, max_s=300).block_s(10_000) == 300


def test_strangers_cannot_lock_a_charger_out_of_its_own_address() -> None:
    t = LoginThrottle(identity=Backoff(free=1, base_s=60), address=Backoff(free=100))
    t.succeeded("CP", "charger-ip")
    for _ in range(5):  # someone elsewhere fails in CP's name
        t.failed("CP", "attacker-ip", 0.0)
    assert t.retry_after_s("CP", "attacker-ip", 0.0) > 0
    assert t.retry_after_s("CP", "other-ip", 0.0) > 0  # a password guesser elsewhere is still blocked
    assert t.retry_after_s("CP", "charger-ip", 0.0) == 0  # the charger itself reconnects
