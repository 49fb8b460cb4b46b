"""Recording what the observed Jobs say into the cell records.

For each cell the observed Jobs are taken oldest attempt first, against the cell's record:

- a Job of a later attempt than the record knows is adopted as running: the operator created
  it and crashed before the status write (or read a stale status);
- a finished Job of the running attempt is judged: completed, retry_wait, or failed for good,
  which is `blocked` instead when a person can fix the failure (`waits_for_person`);
- any Job whose outcome the record already holds (an earlier attempt, a settled cell) is
  listed for deletion; deleting it after the status write loses nothing.

Each finished attempt's outcome is recorded by exactly one decision: once the record moved on,
a later sighting of its Job (another pass, a restart) is only listed for deletion. So whatever
rides on an outcome, such as the cost its executor reported, counts exactly once if it goes into
the same status as the record.

A running attempt with no Job at all is the shell's to recreate, under the same name
(`running_without_job`): it never counts as a new attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bentham.api.manifest import EvidenceLevel, QualityGates, Retry, RetryConditions
from bentham.core.checkpoint import MAX_ATTEMPTS, SETTLED_STATES, CellRecord, CellState
from bentham.core.decision import ObservedJob
from bentham.core.results import Verdict, assess_attempt
from bentham.core.retries import DEFAULT_RETRY, may_retry, retry_at
from bentham.core.tally import Tally


@dataclass(frozen=True)
class CellOutcome:
    """A finished attempt and what it meant for its cell."""

    cell_index: int
    attempt: int
    verdict: Verdict
    result: Literal["completed", "retrying", "failed"]
    """What the attempt meant; a blocked cell failed (until a person reopens it)."""
    cost_micro_usd: int | None = None
    """What the executor reported the attempt cost (`costUsd`), in micro-dollars, if it did."""


@dataclass(frozen=True)
class Bookkeeping:
    records: list[CellRecord]
    finished_jobs: list[str]
    """Jobs whose outcome `records` holds (or that are not ours to run): delete after the write."""
    outcomes: list[CellOutcome]
    changes: dict[int, CellRecord]
    """The records that changed, by index: a `Tally` of the records before is advanced by these alone."""


def record_outcomes(
    records: Sequence[CellRecord],
    jobs: Sequence[ObservedJob],
    *,
    study_uid: str,
    gates: QualityGates,
    evidence_level: EvidenceLevel,
    max_attempts: int,
    waits_for_person: Callable[[int, Verdict], bool],
    now: datetime,
    retry: Retry = DEFAULT_RETRY,
    conditions: RetryConditions | None = None,
) -> Bookkeeping:
    """The records after taking every observed Job into account.

    `waits_for_person(cell, verdict)` says whether a cell failing for good with `verdict` is
    blocked (a person may reopen it) rather than failed. `retry` schedules the next attempt and
    `conditions` (the manifest's written retryConditions) may stop a retry (`retries`).
    """
    updated = list(records)
    finished: list[str] = []
    outcomes: list[CellOutcome] = []
    touched: set[int] = set()
    for job in sorted(jobs, key=lambda j: (j.cell_index, j.attempt, j.name)):
        if not 0 <= job.cell_index < len(updated) or not 1 <= job.attempt <= MAX_ATTEMPTS:
            finished.append(job.name)  # Not a cell of this study: nothing to record, nothing to run.
            continue
        record = updated[job.cell_index]
        if job.attempt > record.attempts and record.state not in SETTLED_STATES:
            record = record.moved(CellState.RUNNING, attempts=job.attempt)
        if job.attempt != record.attempts or record.state is not CellState.RUNNING:
            finished.append(job.name)
            continue
        updated[job.cell_index] = record
        touched.add(job.cell_index)
        if job.phase == "running":
            continue
        assessment = assess_attempt(
            phase=job.phase,
            termination_message=job.termination_message,
            failure_reason=job.failure_reason,
            gates=gates,
            evidence_level=evidence_level,
        )
        verdict, cost = assessment.verdict, assessment.cost_micro_usd
        finished.append(job.name)
        if verdict.passed:
            updated[job.cell_index] = record.moved(CellState.COMPLETED)
            outcomes.append(CellOutcome(job.cell_index, job.attempt, verdict, "completed", cost))
        elif may_retry(verdict, attempts=record.budget_used, max_attempts=max_attempts, conditions=conditions):
            due = retry_at(
                job.finished_at or now, record.budget_used, study_uid=study_uid, cell_index=job.cell_index, policy=retry
            )
            updated[job.cell_index] = record.moved(CellState.RETRY_WAIT, retry_at=due)
            outcomes.append(CellOutcome(job.cell_index, job.attempt, verdict, "retrying", cost))
        else:
            settled = CellState.BLOCKED if waits_for_person(job.cell_index, verdict) else CellState.FAILED
            updated[job.cell_index] = record.moved(settled)
            outcomes.append(CellOutcome(job.cell_index, job.attempt, verdict, "failed", cost))
    changes = {index: updated[index] for index in touched if updated[index] is not records[index]}
    return Bookkeeping(records=updated, finished_jobs=finished, outcomes=outcomes, changes=changes)


def running_without_job(counted: Tally, jobs: Sequence[ObservedJob]) -> list[int]:
    """Cells whose running attempt has no Job: created-then-lost, or not yet in the cache."""
    observed = {(job.cell_index, job.attempt) for job in jobs}
    records = counted.records
    return sorted(index for index in counted.running if (index, records[index].attempts) not in observed)
