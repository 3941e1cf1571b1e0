"""Token buckets and the bounded per-source table (server.limits)."""

from __future__ import annotations

from server.limits import SourceLimiter, TokenBucket


def test_a_bucket_gives_its_burst_then_its_rate():
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.1) and not bucket.take(0.1)  # 10/s: one token back after 0.1 s
    assert sum(bucket.take(10.0) for _ in range(20)) == 5  # never more than the burst saved up


def test_a_clock_going_backwards_gives_nothing():
    bucket = TokenBucket(rate=10, burst=1, now=5.0)
    assert bucket.take(5.0) and not bucket.take(1.0)


def test_sources_are_limited_apart():
    limiter = SourceLimiter(rate=1, burst=2, sources=10)
    assert [limiter.allow("198.51.100.66", 0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("198.51.100.101", 0.0)


def test_the_table_of_sources_is_bounded_least_recent_first_out():
    limiter = SourceLimiter(rate=1, burst=1, sources=3)
    for i in range(3):
        limiter.allow(f"10.0.0.{i}", 0.0)
    limiter.allow("10.0.0.0", 0.0)  # 10.0.0.0 is the most recent now
    limiter.allow("10.0.0.9", 0.0)
    assert list(limiter.buckets) == ["10.0.0.2", "10.0.0.0", "10.0.0.9"] and limiter.evicted == 1
    for i in range(1000):
        limiter.allow(f"10.1.{i // 256}.{i % 256}", 0.0)
    assert len(limiter.buckets) == 3


def test_rate_zero_means_no_limit():
    limiter = SourceLimiter(rate=0, burst=0, sources=1)
    assert all(limiter.allow("x", 0.0) for _ in range(1000)) and not limiter.buckets
