"""`/metrics`' exposition: today's names and labels, read back with prometheus_client's own parser, and one
registry per app (two data planes in one process keep their own counts)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rock_admin.api.metrics import registry
from rock_admin.service.metrics import Metrics


class _Plane:
    def __init__(self, running: int) -> None:
        self.metrics = Metrics()
        self.running = running

    def counts(self) -> dict[str, int]:
        return {"running": self.running}


def _samples(plane: _Plane) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry(plane)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_names_labels_and_values() -> None:
    plane = _Plane(running=2)
    plane.metrics.observe("sandbox.execute", "200", 0.003)
    plane.metrics.observe("sandbox.execute", "401", 0.0)
    plane.metrics.starts += 1
    plane.metrics.auto_stops += 2
    got = _samples(plane)
    assert got[("rock_admin_requests_total", (("code", "200"), ("op", "sandbox.execute")))] == 1
    assert got[("rock_admin_requests_total", (("code", "401"), ("op", "sandbox.execute")))] == 1
    bucket = "rock_admin_request_seconds_bucket"
    assert got[(bucket, (("le", "0.001"), ("op", "sandbox.execute")))] == 1
    assert got[(bucket, (("le", "0.005"), ("op", "sandbox.execute")))] == 2
    assert got[(bucket, (("le", "+Inf"), ("op", "sandbox.execute")))] == 2
    assert got[("rock_admin_request_seconds_count", (("op", "sandbox.execute"),))] == 2
    assert got[("rock_admin_request_seconds_sum", (("op", "sandbox.execute"),))] == 0.003
    assert got[("rock_admin_sandboxes", (("state", "running"),))] == 2
    assert got[("rock_admin_sandboxes", (("state", "failed"),))] == 0
    assert got[("rock_admin_sandbox_starts_total", ())] == 1
    assert got[("rock_admin_sandbox_start_failures_total", ())] == 0
    assert got[("rock_admin_sandbox_failures_total", ())] == 0
    assert got[("rock_admin_sandbox_auto_stops_total", ())] == 2


def test_each_app_has_its_own_registry() -> None:
    one, two = _Plane(running=1), _Plane(running=5)
    one.metrics.starts += 3
    assert _samples(one)[("rock_admin_sandbox_starts_total", ())] == 3
    assert _samples(two)[("rock_admin_sandbox_starts_total", ())] == 0
    assert _samples(two)[("rock_admin_sandboxes", (("state", "running"),))] == 5
