"""The benchmark's pure parts: its studies, the baseline's Jobs, and how targets are judged."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from bench.baseline import planned_jobs
from bench.report import summary, targets
from bench.scenarios import SCENARIOS, grid, study_body
from bentham.api.spec import StudySpec
from bentham.core.reconcile import decide


@pytest.mark.parametrize("cells", [1, 8, 40, 500, 3_000, 10_000])
def test_benchmark_study_has_exactly_the_cells_asked_for(cells: int) -> None:
    spec = StudySpec.model_validate(study_body("bench", cells, parallelism=10)["spec"])
    assert spec.manifest.cell_count == cells


def test_a_cell_count_no_manifest_can_have_is_refused() -> None:
    with pytest.raises(ValueError, match="1001"):
        grid(1_001)  # a prime above the 1,000-query limit


def test_scaling_keeps_whole_queries_and_never_more_parallelism_than_cells() -> None:
    assert [s.scaled(0.01).cells for s in SCENARIOS] == [40, 100, 5]
    assert [s.scaled(0.01).parallelism for s in SCENARIOS] == [40, 100, 5]
    assert all(s.scaled(1) == s for s in SCENARIOS)


def test_baseline_creates_the_very_jobs_the_operator_creates_first_but_owned_by_nothing() -> None:
    body = study_body("bench-3k", 40, parallelism=6)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    decision = decide(
        name="bench-3k",
        namespace="ns",
        uid="uid-1",
        generation=1,
        created_at=now,
        spec=copy.deepcopy(body["spec"]),
        status=None,
        jobs=[],
        now=now,
    )
    planned = planned_jobs("bench-3k", "ns", 40, parallelism=6, uid="uid-1")
    assert len(planned) == 40
    first_wave = []
    for job in decision.create:
        owned = copy.deepcopy(job.body)
        assert owned["metadata"].pop("ownerReferences")[0]["uid"] == "uid-1"
        first_wave.append(owned)
    assert planned[:6] == first_wave


def result(kind: str, scenario: str, scale: float = 1, **numbers: float) -> dict[str, object]:
    return {"kind": kind, "scenario": scenario, "scale": scale, "cells": 3_000, **numbers}


def test_targets_are_judged_on_full_size_operator_results_only() -> None:
    results = [
        result("baseline", "3k", wall_s=100),
        result("operator", "3k", wall_ratio=1.25, status_writes_per_cell=0.2, first_job_s=0.5),
        result("operator", "10k", scale=0.1, wall_ratio=9.0),
    ]
    judged = {(t.scenario, t.what): t.met for t in targets(results)}
    assert judged == {
        ("3k", "wall-time ratio to the baseline"): True,
        ("3k", "status writes per cell"): False,
        ("3k", "apply → first Job"): True,
    }


def test_summary_shows_each_scenario_beside_its_baseline_and_every_missed_target() -> None:
    text = summary(
        [
            result("baseline", "3k", wall_s=100.0, api_requests_per_cell=17.0),
            result("operator", "3k", wall_s=150.0, baseline_wall_s=100.0, wall_ratio=1.5),
        ]
    )
    assert "| 3k | 3,000 | 100.0 | 150.0 | 1.50 |" in text
    assert "| 17.0 |" in text  # the baseline's API requests per cell, beside the operator's
    assert "MISSED  3k: wall-time ratio to the baseline 1.5 (target ≤ 1.3)" in text


def test_the_run_is_judged_on_its_duration_only_when_every_scenario_ran_at_full_size() -> None:
    every = [result("operator", name, wall_ratio=1.0) for name in ("3k", "10k", "20x500")]
    run = [t for t in targets(every, duration_s=21 * 60) if t.scenario == "run"]
    assert [(t.what, t.met) for t in run] == [("every scenario and its baseline", False)]
    assert run[0].line() == "MISSED  run: every scenario and its baseline 21 min (target ≤ 20 min)"
    assert [t.met for t in targets(every, duration_s=14 * 60) if t.scenario == "run"] == [True]

    partial = [*every[:2], result("operator", "20x500", scale=0.1, wall_ratio=1.0)]
    assert not [t for t in targets(partial, duration_s=60) if t.scenario == "run"]
    assert not [t for t in targets(every) if t.scenario == "run"]


def test_pass_time_times_passes_that_each_finish_one_job_and_start_its_successor() -> None:
    from bench.pass_time import run

    result = run(queries=3, surfaces=2, locations=2, parallelism=4, passes=5)
    assert result["cells"] == 12 and result["passes"] == 5
    assert 0 < result["decide_ms"] <= result["pass_max_ms"]
    assert result["pass_median_ms"] <= result["pass_max_ms"]
    assert {"observe_ms", "plan_ms", "serialise_ms"} <= result.keys()
