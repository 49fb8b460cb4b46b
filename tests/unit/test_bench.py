"""The benchmark's pure parts: its studies, the baseline's Jobs, and how targets are judged."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from bench.baseline import planned_jobs
from bench.report import summary, targets
from bench.run import chosen
from bench.scenarios import SCENARIOS, Scenario, grid, plans, study_body
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
    assert [s.scaled(0.01).cells for s in SCENARIOS] == [40, 100, 5, 1_000, 400]
    assert [s.scaled(0.01).parallelism for s in SCENARIOS] == [40, 100, 5, 500, 400]
    assert all(s.scaled(1) == s for s in SCENARIOS)
    mixed = next(s for s in SCENARIOS if s.name == "mixed").scaled(0.01)
    assert mixed.companions is not None and (mixed.companions.cells, mixed.companions.parallelism) == (5, 5)


def test_the_scale_scenarios_fit_the_manifest_and_stay_out_of_the_default_run() -> None:
    by_name = {s.name: s for s in SCENARIOS}
    big = plans(by_name["100k"])
    assert [(p.name, p.cells, p.parallelism) for p in big] == [("bench-100k", 100_000, 500)]
    spec = StudySpec.model_validate(big[0].body()["spec"])
    assert (len(spec.manifest.queries), len(spec.manifest.surfaces), len(spec.manifest.locations)) == (500, 10, 20)
    assert by_name["100k"].restart_at == 0.1

    mixed = plans(by_name["mixed"])
    assert [p.cells for p in mixed] == [50_000] + [500] * 20
    assert [p.companion for p in mixed] == [False] + [True] * 20
    assert mixed[1].name == "bench-mixed-small-00"
    small = StudySpec.model_validate(mixed[1].body()["spec"])
    assert small.executor.parallelism == 10  # what a Study that does not say gets
    assert (len(small.manifest.queries), len(small.manifest.surfaces), len(small.manifest.locations)) == (25, 4, 5)
    assert by_name["mixed"].total_cells == 60_000

    assert [s.name for s in chosen(None, 1, None)] == ["3k", "10k", "20x500"]
    assert [s.name for s in chosen(["100k"], 1, None)] == ["100k"]
    assert chosen(["100k"], 1, 0)[0].restart_at is None
    assert chosen(["3k"], 0.01, 0.5)[0].restart_at == 0.5
    for scenario in SCENARIOS:
        assert Scenario.from_json(scenario.to_json()) == scenario


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
        result(
            "operator", "3k", wall_ratio=1.05, status_writes_per_cell=0.2, first_job_s=0.5, cpu_s_per_1000_cells=3.5
        ),
        result("operator", "10k", scale=0.1, wall_ratio=9.0),
    ]
    judged = {(t.scenario, t.what): t.met for t in targets(results)}
    assert judged == {
        ("3k", "wall-time ratio to the baseline, median of 1 run"): True,
        ("3k", "operator CPU per 1,000 cells"): False,
        ("3k", "status writes per cell"): False,
        ("3k", "apply → first Job"): True,
    }


def test_repeated_runs_are_judged_on_the_median_ratio_and_the_worst_of_the_rest() -> None:
    results = [
        result("operator", "10k", run=n, wall_ratio=ratio, cpu_s_per_1000_cells=cpu)
        for n, ratio, cpu in ((1, 1.3, 2.0), (2, 1.05, 2.5), (3, 1.08, 3.2))
    ]
    judged = {t.what: t for t in targets(results)}
    ratio = judged["wall-time ratio to the baseline, median of 3 runs"]
    assert (ratio.value, ratio.met) == (1.08, True)
    cpu = judged["operator CPU per 1,000 cells, worst of 3 runs"]
    assert (cpu.value, cpu.met) == (3.2, False)
    table = summary([*results, *(result("baseline", "10k", run=n, wall_s=100.0) for n in (1, 2, 3))])
    assert "| 10k #2 | 3,000 |" in table


def test_issue_19_targets_at_100k_and_mixed() -> None:
    big = result(
        "operator",
        "100k",
        wall_ratio=1.12,
        cpu_s_per_1000_cells=2.5,
        restart_resume_s=12.0,
        peak_rss_mb=390,
        study_kib=700,
    )
    mixed = result("operator", "mixed", cpu_s_per_1000_cells=2.0, small_first_job_max_s=1.5, study_kib=400)
    lines = [t.line() for t in targets([big, mixed])]
    assert (
        "met     100k: wall-time ratio to the baseline, its restart included, median of 1 run 1.12 (target ≤ 1.15)"
        in lines
    )
    assert "MISSED  100k: restart → the study's first new Job 12 s (target ≤ 10 s)" in lines
    assert "met     100k: operator peak RSS 390 MB (target ≤ 400 MB)" in lines
    assert "met     100k: Study object size 700 KiB (target ≤ 1024 KiB)" in lines
    assert "met     mixed: apply → first Job, slowest of the 20 small studies 1.5 s (target ≤ 2 s)" in lines
    assert "met     mixed: operator CPU per 1,000 cells 2 s (target ≤ 3 s)" in lines


def test_summary_shows_each_scenario_beside_its_baseline_and_every_missed_target() -> None:
    text = summary(
        [
            result("baseline", "3k", wall_s=100.0, api_requests_per_cell=17.0),
            result("operator", "3k", wall_s=150.0, baseline_wall_s=100.0, wall_ratio=1.5),
        ]
    )
    assert "| 3k | 3,000 | 100.0 | 150.0 | 1.50 |" in text
    assert "| 17.0 |" in text  # the baseline's API requests per cell, beside the operator's
    assert "MISSED  3k: wall-time ratio to the baseline, median of 1 run 1.5 (target ≤ 1.1)" in text


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
