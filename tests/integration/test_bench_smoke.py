"""The benchmark harness (bench/), run at a tiny size so that it cannot rot.

It asserts that every scenario and its baseline run to the end and report every number, with
values that make sense; never how fast anything is (`make bench` measures that, at full size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.kube import Api
from bench.report import summary
from bench.run import USER_AGENT, Bench, install_stage, run_scenario
from bench.scenarios import Scenario
from tests.support import Cluster

REPO = Path(__file__).resolve().parents[2]

OPERATOR_FIELDS = (
    "wall_s",
    "baseline_wall_s",
    "wall_ratio",
    "cells_per_s",
    "status_writes",
    "status_writes_per_cell",
    "api_requests",
    "api_requests_per_cell",
    "peak_rss_mb",
    "cpu_s",
    "cpu_s_per_1000_cells",
    "study_kib",
    "first_job_s",
)
BASELINE_FIELDS = ("wall_s", "cells_per_s", "jobs_created", "api_requests", "api_requests_per_cell", "client_cpu_s")


def positive(result: dict[str, Any], *fields: str) -> None:
    for field in fields:
        value = result.get(field)
        assert isinstance(value, int | float) and value > 0, f"{result['kind']} {result['scenario']}: {field}={value}"


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario("smoke", studies=1, cells=8, parallelism=4),
        Scenario("smoke-2x8", studies=2, cells=8, parallelism=4),
    ],
    ids=lambda scenario: scenario.name,
)
def test_scenario_and_its_baseline_report_every_number(study_crd: Cluster, scenario: Scenario) -> None:
    audit_log = study_crd.kubeconfig.parent / "logs" / "audit.log"
    bench = Bench(
        api=Api(study_crd.kubeconfig, USER_AGENT),
        log_dir=REPO / ".cluster" / "logs",
        audit_log=audit_log if audit_log.exists() else None,
        namespace_prefix="bench-smoke",  # not `t-*`: the session's operator must leave it to ours
        settle_s=0.5,
    )
    install_stage(study_crd.kubeconfig)  # as `make bench` does: the scenarios' pods end in one step
    emitted: list[dict[str, Any]] = []

    baseline, operator = run_scenario(bench, scenario, emitted.append)

    assert emitted == [baseline, operator]
    assert "error" not in baseline, baseline["error"]
    assert "error" not in operator, operator["error"]
    cells = scenario.total_cells
    assert baseline["cells"] == operator["cells"] == cells
    positive(baseline, *BASELINE_FIELDS)
    assert baseline["jobs_created"] == cells
    positive(operator, *OPERATOR_FIELDS)
    assert operator["states"] == {"complete": scenario.studies}
    assert operator["cells_started"] == operator["cells_completed"] == cells
    # Reported numbers are rounded (wall times to 10 ms, rates to 0.1), which at smoke size moves them a few percent.
    assert operator["wall_ratio"] == pytest.approx(operator["wall_s"] / baseline["wall_s"], rel=0.05)
    assert operator["cells_per_s"] == pytest.approx(cells / operator["wall_s"], rel=0.05)
    assert operator["status_writes"] >= scenario.studies  # every study's status was written at least once
    assert operator["first_job_s"] < operator["wall_s"]
    assert operator["study_kib"] > operator["status_kib"] > 0
    assert operator["peak_rss_mb"] < 2048
    if bench.audit_log is not None:
        assert operator["operator_writes"]["create jobs"] == cells  # one Job per cell, none twice
        assert operator["operator_writes"]["delete jobs"] == cells
        assert operator["operator_writes"]["patch studies/status"] == operator["status_writes"]
    assert f"| {scenario.name} | {cells} |" in summary([baseline, operator])
