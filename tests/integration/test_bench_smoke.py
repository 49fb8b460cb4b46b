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
        # `mixed`'s shape: one larger study, then smaller ones at once, each with its own window.
        Scenario("smoke-mixed", studies=1, cells=8, parallelism=4, companions=Scenario("small", 2, 4, 2)),
        # `100k`'s restart: the operator killed once a quarter of the cells completed, a fresh one started.
        Scenario("smoke-restart", studies=1, cells=8, parallelism=2, restart_at=0.25),
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
        # A status that only moves counts waits 5 s by default: too long for the restart to come partway through.
        operator_env={"BENTHAM_STATUS_INTERVAL_SECONDS": "0.2"} if scenario.restart_at else {},
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
    studies = scenario.studies + (scenario.companions.studies if scenario.companions else 0)
    assert baseline["studies"] == operator["studies"] == studies
    assert operator["states"] == {"complete": studies}
    if scenario.restart_at is None:
        assert operator["cells_started"] == operator["cells_completed"] == cells
    else:  # both processes' counters, summed: a cell in flight at the kill is counted by both or by one
        assert operator["cells_started"] >= 1 and operator["cells_completed"] >= 1
        assert operator["restarted"] is True
        assert 0 < operator["restart_gap_s"] < 10
        assert operator["restart_cells_completed_at_kill"] >= operator["restart_after_cells"] >= 1
        positive(operator, "restart_resume_s")
        assert operator["restart_resume_s"] < operator["wall_s"]
    if scenario.companions is not None:
        small = operator["small_first_job_s"]
        assert len(small) == scenario.companions.studies and all(
            0 < wait < operator["wall_s"] for wait in small.values()
        )
        assert operator["small_first_job_max_s"] == max(small.values())
        assert isinstance(operator["small_first_job_while_large_ran"], bool)
    else:
        assert "small_first_job_s" not in operator
    # Reported numbers are rounded (wall times to 10 ms, rates to 0.1), which at smoke size moves them a few percent.
    assert operator["wall_ratio"] == pytest.approx(operator["wall_s"] / baseline["wall_s"], rel=0.05)
    assert operator["cells_per_s"] == pytest.approx(cells / operator["wall_s"], rel=0.05)
    assert operator["status_writes"] >= scenario.studies  # every study's status was written at least once
    assert operator["first_job_s"] < operator["wall_s"]
    assert operator["study_kib"] > operator["status_kib"] > 0
    assert operator["peak_rss_mb"] < 2048
    if bench.audit_log is not None:
        assert operator["operator_writes"]["create jobs"] == cells  # one Job per cell, none twice
        # finished Jobs go in batches (a deletecollection per attempt and up to 20 cells), never one by one
        assert 0 < operator["operator_writes"]["deletecollection jobs"] <= cells
        assert "delete jobs" not in operator["operator_writes"]
        assert operator["operator_writes"]["patch studies/status"] == operator["status_writes"]
    assert f"| {scenario.name} | {cells} |" in summary([baseline, operator])
    assert baseline["run"] == operator["run"] == 1
