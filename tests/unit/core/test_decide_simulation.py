"""Drives `decide()` against a fake cluster until the study ends, checking invariants every step.

The fake cluster plays kwok: a Job runs for a while, then finishes with an outcome drawn from a
seeded rule. The shell's crashes are played too: sometimes the status write is lost after the
Jobs were created, sometimes the creates are lost after the status was written. A person plays
their part: when the study waits for one, they fix the credentials (no attempt made after that
fails with AUTH_FAILED) and acknowledge.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from core_builders import T0, Decided, Study, failed, make_spec, result, running, succeeded

from bentham.api.spec import StudySpec
from bentham.api.status import StudyStatus
from bentham.core.checkpoint import CellState, Derived, read_records
from bentham.core.decision import JobToCreate, ObservedJob
from bentham.core.write_plan import plan_write

OUTCOMES = ["pass", "short", "timeout", "deadline", "auth", "malformed"]


@dataclass
class FakeKwok:
    """Jobs that finish on their own, per a seeded rule."""

    seed: int
    weights: list[int]
    ends: dict[str, float] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)
    created: list[tuple[int, int]] = field(default_factory=list)
    credentials_fixed: bool = False

    def create(self, study: Study, job: JobToCreate, now: float) -> None:
        if job.name in study.jobs:
            return  # AlreadyExists: fine, it is the same attempt
        assert (job.cell.index, job.attempt) not in self.created, f"{job.name} created twice"
        self.created.append((job.cell.index, job.attempt))
        rng = random.Random(f"{self.seed}/{job.cell.index}/{job.attempt}")
        self.ends[job.name] = now + rng.uniform(0.5, 20)
        outcome = rng.choices(OUTCOMES, self.weights)[0]
        self.outcome[job.name] = "pass" if outcome == "auth" and self.credentials_fixed else outcome
        study.jobs[job.name] = running(job)

    def tick(self, study: Study, now: float) -> None:
        for name, job in list(study.jobs.items()):
            if job.phase != "running" or self.ends[name] > now:
                continue
            moment = T0 + timedelta(seconds=self.ends[name])
            study.jobs[name] = finished(job, self.outcome[name], moment)


def finished(job: ObservedJob, kind: str, moment: datetime) -> ObservedJob:
    """The Job once it ended the way `kind` says."""
    if kind == "pass":
        return succeeded(job, result(length=800), at=moment)
    if kind == "short":
        return succeeded(job, result(length=10), at=moment)
    if kind == "timeout":
        return succeeded(job, result(success=False, code="TIMEOUT"), at=moment)
    if kind == "deadline":
        return failed(job, reason="DeadlineExceeded", at=moment)
    if kind == "auth":
        return succeeded(job, result(success=False, code="AUTH_FAILED"), at=moment)
    return succeeded(job, "Traceback (most recent call last)", at=moment)


def apply(study: Study, kwok: FakeKwok, decided: Decided, now: float, rng: random.Random) -> None:
    """Carries out the real write plan, crashing now and then between its parts."""
    plan = plan_write(study.stored, study.held, decided.decision, since_last_write=math.inf, interval=0.0)
    crash = rng.random()
    if crash < 0.10:  # creates lost, status written
        if plan.write is not None:
            study.status = plan.write.as_stored()
        return
    for job in plan.create:
        kwok.create(study, job, now)
    if crash < 0.20:  # status write lost after the creates
        return
    if plan.write is not None:
        study.status = plan.write.as_stored()
    for name in plan.delete:
        study.jobs.pop(name, None)


def run(seed: int, *, weights: list[int], threshold: float, max_retries: int = 3) -> tuple[Study, FakeKwok]:
    spec = make_spec(
        queries=4,
        surfaces=("openai-api", "grok", "meta-ai"),
        locations=("us-nyc", "uk-lon"),
        optional=("meta-ai",),
        threshold=threshold,
        parallelism=5,
        min_length=100,
        max_retries=max_retries,
    )
    study = Study(spec)
    kwok = FakeKwok(seed, weights)
    rng = random.Random(seed)
    now = 0.0
    derived: Derived | None = None
    reused = 0
    for _ in range(2_000):
        waiting = (study.status or {}).get("intervention")
        if waiting is not None and waiting.get("ack") == study.spec.get("interventionAck"):
            kwok.credentials_fixed = True  # attempts already in flight may still fail, and ask again
            study.spec["interventionAck"] = f"fixed-at-{now:.1f}"
        kwok.tick(study, now)
        decision = study.decide(T0 + timedelta(seconds=now))
        assert study.decide(T0 + timedelta(seconds=now)) == decision  # deterministic
        # What the last decision left (its records and their tally, advanced rather than recounted) changes
        # nothing: the same decision as from the status alone, whether or not its status was written.
        assert study.decide(T0 + timedelta(seconds=now), derived=derived) == decision
        checkpoint = StudyStatus.model_validate(study.status or {}).checkpoint
        reused += derived is not None and checkpoint is not None and derived.packs(checkpoint)
        derived = decision.decision.derived
        apply(study, kwok, decision, now, rng)
        in_flight = [j for j in study.jobs.values() if j.phase == "running"]
        assert len(in_flight) <= 5, "more than parallelism in flight"
        if study.state in ("complete", "failed") and not study.jobs:
            break
        now += rng.uniform(0.2, 3)
    else:
        pytest.fail(f"seed {seed}: the study never ended: {study.status and study.status['message']}")
    assert reused > 0, "the decider was given what the last decision left, and could use it"
    return study, kwok


def check_final_counts(study: Study, kwok: FakeKwok) -> None:
    assert study.status is not None
    records = read_records(StudyStatus.model_validate(study.status).checkpoint)
    assert records is not None
    attempts: dict[int, int] = {}
    for cell, attempt in kwok.created:
        attempts[cell] = max(attempts.get(cell, 0), attempt)
    last = {
        cell: next(name for name, o in kwok.outcome.items() if name.endswith(f"-c{cell}-a{n}"))
        for cell, n in attempts.items()
    }
    for cell, record in enumerate(records):
        made = attempts.get(cell, 0)
        # A failed study may end right after a pass whose creates were lost: that attempt counts, unmade.
        assert made <= record.attempts <= made + (study.state == "failed")
        if record.state is CellState.COMPLETED:
            assert kwok.outcome[last[cell]] == "pass"
        if record.state is CellState.FAILED:
            assert kwok.outcome[last[cell]] != "pass"
            assert kwok.outcome[last[cell]] == "auth" or record.budget_used == 3
        if record.state is CellState.BLOCKED:
            assert kwok.outcome[last[cell]] == "auth"
        assert record.state is not CellState.RUNNING
    progress = study.status["progress"]
    assert progress["completedCells"] == sum(r.state is CellState.COMPLETED for r in records)
    assert progress["failedCells"] == sum(r.state in (CellState.FAILED, CellState.BLOCKED) for r in records)
    assert progress["executingCells"] == 0


@pytest.mark.parametrize("seed", range(12))
def test_simulated_study_mostly_succeeding_runs_to_completion(seed: int) -> None:
    study, kwok = run(seed, weights=[80, 5, 6, 4, 1, 4], threshold=0.5)
    assert study.state == "complete"
    check_final_counts(study, kwok)
    manifest = StudySpec.model_validate(study.spec).manifest
    assert manifest.required_surface_ids
    assert study.status is not None
    for surface in ("openai-api", "grok"):
        counts = study.status["progress"]["bySurface"][surface]
        assert counts["pending"] == 0 and counts["completed"] / counts["total"] >= 0.5


@pytest.mark.parametrize("seed", range(12))
def test_simulated_study_mostly_failing_fails_early(seed: int) -> None:
    study, kwok = run(seed, weights=[20, 20, 10, 10, 30, 10], threshold=0.9)
    assert study.state == "failed"
    assert study.condition("Failed")["reason"] == "RequiredSurfaceUnreachable"
    check_final_counts(study, kwok)
