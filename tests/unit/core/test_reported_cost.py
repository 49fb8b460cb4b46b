"""`status.cost`: the executors' reported costUsd, summed by `decide()` once per attempt, whatever happens."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from core_builders import Study, at, failed, make_spec, manifest, result, running, succeeded

from bentham.api.status import ActualCost
from bentham.core.actual_cost import add_reported_costs
from bentham.core.money import micro_usd, usd
from bentham.core.outcomes import CellOutcome
from bentham.core.results import PASSED


def costing(usd: float, message: str | None = None) -> str:
    """An executor's message (a good result by default) that reports `usd`."""
    body: dict[str, Any] = json.loads(message or result())
    return json.dumps(body | {"costUsd": usd})


def two_cells() -> Study:
    """1 query x openai-api, anthropic-api x us-nyc: cell 0 is openai-api's, cell 1 anthropic-api's."""
    return Study(make_spec(queries=1, locations=("us-nyc",)))


def test_passed_and_failed_attempts_costs_sum_into_the_total_and_by_surface() -> None:
    study = two_cells()
    openai, anthropic = study.step().create
    study.finish(openai.name, succeeded(openai, costing(0.25), at=at(1)))
    study.finish(anthropic.name, failed(anthropic, costing(0.1, result(success=False, code="TIMEOUT")), at=at(1)))
    study.step(at(1))
    [retry] = study.step(at(5)).create
    study.finish(retry.name, succeeded(retry, costing(0.1), at=at(6)))

    done = study.step(at(6))

    assert done.status["state"] == "complete"
    # openai-api 0.25; anthropic-api 0.1 for the failed attempt + 0.1 for its retry; 3 attempts.
    assert done.status["cost"] == {
        "totalMicroUsd": 450_000,
        "bySurfaceMicroUsd": {"openai-api": 250_000, "anthropic-api": 200_000},
        "totalUsd": 0.45,
        "bySurface": {"openai-api": 0.25, "anthropic-api": 0.2},
        "attempts": 3,
    }


def test_a_finished_job_seen_again_after_its_outcome_was_written_adds_nothing() -> None:
    study = two_cells()
    openai, _ = study.step().create
    study.finish(openai.name, succeeded(openai, costing(0.25), at=at(1)))
    recorded = study.step(at(1))
    study.jobs[openai.name] = succeeded(openai, costing(0.25), at=at(1))  # its delete was lost

    again = study.step(at(2))  # a later pass, or a restarted operator: both decide from the written status

    assert again.delete == [openai.name]
    assert (
        again.status["cost"]
        == recorded.status["cost"]
        == {
            "totalMicroUsd": 250_000,
            "bySurfaceMicroUsd": {"openai-api": 250_000},
            "totalUsd": 0.25,
            "bySurface": {"openai-api": 0.25},
            "attempts": 1,
        }
    )


def test_a_status_lost_before_its_write_counts_the_attempt_once_when_decided_again() -> None:
    study = two_cells()
    openai, _ = study.step().create
    study.finish(openai.name, succeeded(openai, costing(0.25), at=at(1)))
    study.decide(at(1))  # decided, then the operator crashed before writing it

    redone = study.step(at(2))

    assert redone.status["cost"]["totalUsd"] == 0.25
    assert redone.status["cost"]["attempts"] == 1


def test_a_held_status_carries_the_sum_and_the_next_pass_does_not_add_it_again() -> None:
    study = Study(make_spec(queries=50, locations=("us-nyc",)))  # 100 cells: one outcome is below a step
    jobs = study.step().create
    study.finish(jobs[0].name, succeeded(jobs[0], costing(0.5), at=at(1)))

    held = study.step(at(1), since_last_write=1, interval=5)
    assert study.held is not None and held.status["cost"]["totalUsd"] == 0.5
    assert (study.status or {}).get("cost") is None, "held, not written"
    later = study.step(at(2), since_last_write=2, interval=5)  # the Job is still there: its delete waits for the write

    assert later.status["cost"]["totalMicroUsd"] == 500_000 and later.status["cost"]["attempts"] == 1


def test_attempts_that_report_no_cost_leave_the_status_without_one() -> None:
    study = two_cells()
    openai, anthropic = study.step().create
    study.finish(openai.name, succeeded(openai, at=at(1)))
    study.finish(anthropic.name, succeeded(anthropic, at=at(1)))

    assert "cost" not in study.step(at(1)).status


def test_a_cancelled_study_keeps_the_cost_of_the_attempts_it_recorded() -> None:
    spec = make_spec(queries=1, locations=("us-nyc",))
    study = Study(spec)
    openai, anthropic = study.step().create
    study.finish(openai.name, succeeded(openai, costing(0.25), at=at(1)))
    study.jobs[anthropic.name] = running(anthropic)
    spec["cancel"] = {"reason": "enough"}

    cancelled = study.step(at(2))

    assert cancelled.status["state"] == "cancelled"
    assert cancelled.status["cost"]["totalUsd"] == 0.25


def test_many_small_costs_add_up_exactly() -> None:
    study_manifest = manifest(queries=10, surfaces=("openai-api",), locations=("us-nyc",))
    outcomes = [CellOutcome(index, 1, PASSED, "completed", micro_usd(0.1)) for index in range(10)]

    summed = add_reported_costs(None, outcomes, study_manifest)

    assert sum([0.1] * 10) != 1.0  # 0.9999999999999999 in binary floats
    assert summed == ActualCost(
        totalMicroUsd=1_000_000, bySurfaceMicroUsd={"openai-api": 1_000_000},
        totalUsd=1.0, bySurface={"openai-api": 1.0}, attempts=10,
    )  # fmt: skip
    assert add_reported_costs(summed, outcomes[:3], study_manifest) == ActualCost(
        totalMicroUsd=1_300_000, bySurfaceMicroUsd={"openai-api": 1_300_000},
        totalUsd=1.3, bySurface={"openai-api": 1.3}, attempts=13,
    )  # fmt: skip


def test_a_million_one_micro_dollar_costs_sum_to_exactly_one_dollar() -> None:
    study_manifest = manifest(queries=1, surfaces=("openai-api",), locations=("us-nyc",))
    total: ActualCost | None = None
    for _ in range(1000):
        total = add_reported_costs(total, [CellOutcome(0, 1, PASSED, "completed", 1)] * 1000, study_manifest)

    assert total is not None and total.totalMicroUsd == 1_000_000 and total.totalUsd == 1.0


def test_a_status_written_before_the_micro_dollar_sums_goes_on_from_its_usd_figures() -> None:
    study_manifest = manifest(queries=1, surfaces=("openai-api",), locations=("us-nyc",))
    written = ActualCost(totalUsd=0.3, bySurface={"openai-api": 0.3}, attempts=3)

    summed = add_reported_costs(written, [CellOutcome(0, 4, PASSED, "completed", 100_000)], study_manifest)

    assert summed == ActualCost(
        totalMicroUsd=400_000, bySurfaceMicroUsd={"openai-api": 400_000},
        totalUsd=0.4, bySurface={"openai-api": 0.4}, attempts=4,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("amount", "micros"),
    [(0.1, 100_000), (0.0000005, 1), (0.0000004, 0), (1e-7, 0), (123.456789, 123_456_789), (1_000_000.0, 10**12)],
)
def test_a_reported_cost_is_taken_to_the_nearest_micro_dollar(amount: float, micros: int) -> None:
    assert micro_usd(amount) == micros
    assert usd(micros) == float(Decimal(micros).scaleb(-6))
