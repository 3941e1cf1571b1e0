"""The broker's bounds: every table has a size, every source a rate, every room an end.

One place for the numbers (docs/protocol.md lists them with the reasons). The token buckets are
per source IP and live in a table of bounded size: when it is full the source heard from least
recently is forgotten, so memory stays bounded whatever the number of sources (a forgotten
source starts again with a full bucket: an attacker with thousands of addresses gets thousands
of bursts, and no more than that per address).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_rooms: int = 1024  # rooms held at once; a new room beyond this is refused ("busy")
    room_size: int = 2  # members per room
    room_lifetime_s: float = 600.0  # a room is forgotten this long after it was made, whatever happens in it
    member_ttl_s: float = 60.0  # a member not heard from for this long is forgotten
    clock_skew_s: float = 30.0  # a register's timestamp may differ from the broker's clock by this much
    replay_entries: int = 4096  # register MACs remembered (each for 2 x skew) to refuse replays
    rendezvous_rate: float = 10.0  # rendezvous datagrams per second per source IP (0: no limit)
    rendezvous_burst: float = 20.0
    stun_rate: float = 100.0  # STUN requests per second per source IP (0: no limit)
    stun_burst: float = 200.0
    sources: int = 4096  # source IPs each rate limiter remembers


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; each datagram takes one."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SourceLimiter:
    """A token bucket per source IP, in a table of at most `sources` entries (least recent evicted)."""

    def __init__(self, rate: float, burst: float, sources: int) -> None:
        self.rate, self.burst, self.sources = rate, burst, sources
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.evicted = 0

    def allow(self, source_ip: str, now: float) -> bool:
        if self.rate <= 0:
            return True
        bucket = self.buckets.pop(source_ip, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now)
            if len(self.buckets) >= self.sources:
                self.buckets.popitem(last=False)
                self.evicted += 1
        self.buckets[source_ip] = bucket
        return bucket.take(now)
