"""Failed-login throttling at the handshake, per identity and per remote address. Pure: time is passed in.

Why: a wrong password costs a PBKDF2 hash (~26 ms of CPU), so 40 guesses a second fill a core and slow
every other charger. After `free` failures a key is blocked for `base_s`, doubling with each further
failure up to `max_s`; while blocked, attempts are refused before any lookup or hash (HTTP 429 with
Retry-After), which costs a dict read. A success clears the identity's record, not the address's (many
chargers may share one address behind NAT: the address gets more free failures instead). Records are
forgotten `forget_s` after their last failure, and at most `max_keys` are kept (oldest dropped).

Charger identities are often printed on the charger, so anyone could keep a charger locked out by failing
in its name now and then. The identity's block therefore does not apply to the address the identity last
logged in from (its own connection); the address's block does.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


@dataclass(frozen=True, slots=True)
class Backoff:
    free: int
    base_s: float = 1.0
    max_s: float = 300.0
    forget_s: float = 900.0

    def block_s(self, failures: int) -> float:
        """Seconds blocked after the `failures`-th failure in a row."""
        if failures <= self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - self.free - 1, 30)))


class LoginThrottle:
    def __init__(self, *, identity: Backoff = Backoff(free=3), address: Backoff = Backoff(free=20),
                 max_keys: int = 100_000) -> None:
        self._policy = {"id": identity, "addr": address}
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._home: OrderedDict[str, str] = OrderedDict()  # identity -> address of its last success
        self._max_keys = max_keys
        self.refused = 0  # attempts refused because blocked (a counter for metrics and tests)

    def retry_after_s(self, identity: str, address: str, now: float) -> float:
        """0 if the attempt may proceed, else the seconds until it may (the later of the two blocks)."""
        wait = 0.0
        keys = [("addr", address)] if self._home.get(identity) == address else [("id", identity), ("addr", address)]
        for key in keys:
            r = self._records.get(key)
            if r is not None and r.blocked_until > now:
                wait = max(wait, r.blocked_until - now)
        if wait:
            self.refused += 1
        return wait

    def failed(self, identity: str | None, address: str, now: float) -> None:
        """A failed attempt (wrong or missing credentials; unknown identity: identity None)."""
        self._fail(("addr", address), now)
        if identity is not None:
            self._fail(("id", identity), now)

    def succeeded(self, identity: str, address: str) -> None:
        self._records.pop(("id", identity), None)
        self._home[identity] = address
        self._home.move_to_end(identity)
        if len(self._home) > self._max_keys:
            self._home.popitem(last=False)

    def _fail(self, key: tuple[str, str], now: float) -> None:
        policy = self._policy[key[0]]
        r = self._records.get(key)
        if r is None or now - r.last_failure > policy.forget_s:
            r = _Record()
        r.failures += 1
        r.last_failure = now
        r.blocked_until = now + policy.block_s(r.failures)
        self._records[key] = r
        self._records.move_to_end(key)
        while len(self._records) > self._max_keys:
            self._records.popitem(last=False)
