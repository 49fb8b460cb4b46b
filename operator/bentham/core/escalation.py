"""What the operator does about a study at risk: announce it once per stage, and add parallelism.

**Stages.** An at-risk stretch is announced (a Warning Event `AtRisk`, one `study.at_risk`
notification) when it begins, and again only when it crosses a stage of the time from the
study's creation to its deadline: stage 1 at half of it used, stage 2 at three quarters. A
stretch that begins late starts at the stage it is in. Once back on schedule the stages reset,
so a study that becomes at risk again is announced again. The status keeps the stretch's start
(`deadline.atRiskSince`) and the stage announced (`deadline.escalationStage`): feeding a
decision's own status back never announces anything twice.

**Parallelism.** While at risk, with cells waiting and allowed to start, the operator raises
`status.parallelism` by half of `executor.parallelism` (at least 1), at most once a minute, up to
`executor.maxParallelism` (never, when unset). Once the study is no longer at risk it goes back
to `executor.parallelism` at once; cells already in flight above it finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from bentham.api.spec import Executor
from bentham.core.decision import StudyEvent
from bentham.core.timestamps import parse_rfc3339, rfc3339

ESCALATION_STAGES = (0.5, 0.75)
"""Shares of the time to the deadline whose crossing, while at risk, is announced again."""
PARALLELISM_STEP_SECONDS = 60.0


@dataclass(frozen=True)
class Escalation:
    """The at-risk stretch after this decision, and what to announce."""

    since: str | None
    stage: int | None
    announce: bool
    """The stretch began, or crossed into a higher stage, in this decision."""
    cleared: bool
    """The study was at risk and is not any more."""


def escalation_stage(time_used: float) -> int:
    """0 before half the time is used, 1 from half, 2 from three quarters."""
    return sum(1 for stage in ESCALATION_STAGES if time_used >= stage)


def escalate(
    *, at_risk: bool, stage: int, previous_since: str | None, previous_stage: int | None, now: str
) -> Escalation:
    """The stretch's new start and stage given the at-risk verdict; `now` is the RFC 3339 time."""
    if not at_risk:
        return Escalation(since=None, stage=None, announce=False, cleared=previous_since is not None)
    if previous_since is None:
        return Escalation(since=now, stage=stage, announce=True, cleared=False)
    if previous_stage is None or stage > previous_stage:
        return Escalation(since=previous_since, stage=stage, announce=True, cleared=False)
    return Escalation(since=previous_since, stage=previous_stage, announce=False, cleared=False)


def parallelism_step(executor: Executor) -> int:
    """How much one raise adds: half the spec's parallelism, at least 1."""
    return max(1, math.ceil(executor.parallelism / 2))


def next_parallelism(
    executor: Executor,
    current: int,
    *,
    at_risk: bool,
    may_start: bool,
    cells_waiting: bool,
    changed_at: datetime | None,
    now: datetime,
) -> int:
    """The parallelism after this decision (see the module docstring)."""
    if not at_risk:
        return min(current, executor.parallelism)
    ceiling = executor.maxParallelism
    if ceiling is None or current >= ceiling or not (may_start and cells_waiting):
        return current
    if changed_at is not None and (now - changed_at).total_seconds() < PARALLELISM_STEP_SECONDS:
        return current
    return min(ceiling, current + parallelism_step(executor))


@dataclass(frozen=True)
class ParallelismChange:
    """The parallelism after this decision, and the event that announces a change."""

    parallelism: int
    changed_at: str | None
    """When it last changed (RFC 3339)."""
    event: StudyEvent | None


def adjust_parallelism(
    executor: Executor,
    current: int,
    changed_at: str | None,
    *,
    at_risk: bool,
    may_start: bool,
    cells_waiting: bool,
    now: datetime,
) -> ParallelismChange:
    """Raises parallelism a step while at risk, or lowers it back once not (see the module docstring)."""
    try:
        last_change = parse_rfc3339(changed_at) if changed_at else None
    except ValueError:
        last_change = None
    after = next_parallelism(
        executor,
        current,
        at_risk=at_risk,
        may_start=may_start,
        cells_waiting=cells_waiting,
        changed_at=last_change,
        now=now,
    )
    if after == current:
        return ParallelismChange(current, changed_at, None)
    if after > current:
        message = f"At risk: parallelism raised from {current} to {after} (maxParallelism {executor.maxParallelism})"
        event = StudyEvent("Normal", "ParallelismRaised", message)
    else:
        event = StudyEvent(
            "Normal", "ParallelismLowered", f"No longer at risk: parallelism lowered from {current} to {after}"
        )
    return ParallelismChange(after, rfc3339(now), event)
