"""Counters the `/metrics` endpoint renders (Prometheus text); every role keeps its own."""

from __future__ import annotations


class Metrics:
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self) -> None:
        self.starts = 0
        self.start_failures = 0
        self.failures = 0
        self.auto_stops = 0
        self.requests: dict[tuple[str, str], int] = {}
        self.latency_sum: dict[str, float] = {}
        self.latency_count: dict[str, int] = {}
        self.latency_buckets: dict[str, list[int]] = {}

    def observe(self, op: str, status: str, seconds: float) -> None:
        key = (op, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency_sum[op] = self.latency_sum.get(op, 0.0) + seconds
        self.latency_count[op] = self.latency_count.get(op, 0) + 1
        buckets = self.latency_buckets.setdefault(op, [0] * len(self.BUCKETS))
        for i, bound in enumerate(self.BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
