"""Watching a study's deadline during one decision: its figures, the at-risk verdict, what passing it does.

"The deadline" here is the study's end (`study_end`): the manifest's deadline, or its time-out
of running time, whichever comes first. The arithmetic is `deadlines`' and the announcements'
schedule `escalation`'s; this module ties them to one decision: which previous figures still
stand (`Watched`), what happens once the deadline has passed (`past_deadline`), the deadline
status and its announcements (`watch_deadline`), what the status shows between refreshes
(`shown_deadline`), the AtRisk condition, and when the study must be looked at again
(`requeue_after`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bentham.api.manifest import Manifest
from bentham.api.spec import OnDeadlineMissed, Policy
from bentham.api.status import Condition, DeadlineSetBy, DeadlineStatus, Progress, StudyStatus
from bentham.core.conditions import AT_RISK, condition_of
from bentham.core.coverage import thresholds_met
from bentham.core.deadlines import DEADLINE_CHECK_SECONDS, DeadlineFigures, assess_risk, deadline_figures
from bentham.core.decision import StudyEvent
from bentham.core.escalation import escalate, escalation_stage
from bentham.core.lifecycle import tally
from bentham.core.notifications import Note
from bentham.core.running_time import RunningTime
from bentham.core.states import is_terminal
from bentham.core.study_end import StudyEnd, study_end, window_start
from bentham.core.success_rate import LOW_SUCCESS_RATE, LowSuccess
from bentham.core.timestamps import parse_rfc3339, rfc3339

MIN_REQUEUE_SECONDS = 1.0
DEADLINE_MISSED = "DeadlineMissed"
STUDY_TIMED_OUT = "StudyTimedOut"


@dataclass(frozen=True)
class Watched:
    """The study's end, and what the previous status says about it."""

    end: StudyEnd | None
    """The deadline or the time-out, whichever comes first; None without either."""
    previous: DeadlineStatus | None
    """The previous deadline status, while it is about the same end."""
    missed: bool
    """This end passed short of the thresholds and the policy was applied (and it has not moved later)."""

    @property
    def deadline(self) -> str | None:
        """The end (RFC 3339), None without one."""
        return self.end.text if self.end is not None else None


def watched_of(manifest: Manifest, previous: StudyStatus, running: RunningTime, now: datetime) -> Watched:
    """What the previous status says about the study's end now.

    A previous status is about the same end when the same bound sets it: the same deadline, or
    the time-out (whose moment moves while the study is paused). A missed end stays missed while
    it is past: moving it later (a later deadline, a longer time-out) makes it a new one.
    """
    end = study_end(manifest, running, previous.deadline, now)
    same = None
    if end is not None and previous.deadline is not None:
        shown = previous.deadline
        if (shown.setBy or DeadlineSetBy.DEADLINE) is end.set_by and (
            end.set_by is DeadlineSetBy.STUDY_TIMEOUT or shown.deadline == end.text
        ):
            same = shown
    missed = same is not None and same.missed and end is not None and end.at <= now
    return Watched(end=end, previous=same, missed=missed)


def figures_of(
    end: StudyEnd | None,
    manifest: Manifest,
    *,
    created_at: datetime,
    progress: Progress,
    running_seconds: float,
    now: datetime,
) -> DeadlineFigures | None:
    """The figures against the study's end now; None for a study without one."""
    if end is None:
        return None
    return deadline_figures(
        deadline=end.at,
        created_at=window_start(end, created_at, running_seconds, now),
        progress=progress,
        threshold=manifest.completionCriteria.requiredSurfaces.coverageThreshold,
        running_seconds=running_seconds,
        now=now,
    )


def is_past(end: StudyEnd | None, now: datetime) -> bool:
    """Whether the study has an end and it has passed."""
    return end is not None and end.at <= now


@dataclass(frozen=True)
class PastDeadline:
    """What passing the deadline does in this decision."""

    action: Literal["complete", "fail", "ask", "carry_on"]
    message: str
    missed: bool
    reason: str = ""
    """`DeadlineMissed` or `StudyTimedOut`, for `fail` and `ask`."""


def past_deadline(
    progress: Progress, figures: DeadlineFigures, watched: Watched, policy: Policy, *, threshold: float
) -> PastDeadline:
    """Past the deadline: complete when the thresholds are met, else apply the policy once.

    `complete` skips the cells not yet started and completes once those in flight are recorded
    (`completed_at_deadline` says so); `ask` waits for a person with no cell starting;
    `carry_on` means a person already chose to go on past this deadline.
    """
    if thresholds_met(progress, threshold):
        return PastDeadline("complete", "", watched.missed)
    if watched.missed:
        return PastDeadline("carry_on", "", missed=True)
    assert watched.end is not None
    what = (
        f"{watched.end.describe()} passed with {figures.cells_needed} required cells short of "
        f"the coverage thresholds (bottleneck {figures.bottleneck})"
    )
    timed_out = watched.end.set_by is DeadlineSetBy.STUDY_TIMEOUT
    reason = STUDY_TIMED_OUT if timed_out else DEADLINE_MISSED
    if policy.onDeadlineMissed is OnDeadlineMissed.FAIL:
        headline = "Timed out" if timed_out else "Deadline missed"
        return PastDeadline("fail", f"{headline}: {what}", missed=True, reason=reason)
    return PastDeadline("ask", f"{what}; no cell starts", missed=True, reason=reason)


def completed_at_deadline(progress: Progress, end: StudyEnd) -> str:
    """The message of a study completed at its end."""
    return (
        f"Complete at {end.name}: every required surface meets its coverage threshold; "
        f"{progress.skippedCells} cells skipped. {tally(progress)}"
    )


@dataclass(frozen=True)
class DeadlineWatch:
    """The deadline status this decision computed, the at-risk verdict and its announcements."""

    status: DeadlineStatus | None
    at_risk: bool = False
    reason: str = ""
    summary: str = ""
    events: list[StudyEvent] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def watch_deadline(
    figures: DeadlineFigures | None, watched: Watched, policy: Policy, *, missed: bool, now: datetime
) -> DeadlineWatch:
    """The deadline status, the at-risk verdict, and the announcements of an at-risk stretch."""
    if figures is None:
        return DeadlineWatch(status=None)
    previous = watched.previous
    risk = assess_risk(
        figures,
        was_at_risk=previous is not None and previous.atRisk,
        margin=policy.atRiskMargin,
        no_progress_fraction=policy.noProgressFraction,
    )
    checked = rfc3339(now)
    escalation = escalate(
        at_risk=risk.at_risk,
        stage=escalation_stage(figures.time_used),
        previous_since=previous.atRiskSince if previous is not None else None,
        previous_stage=previous.escalationStage if previous is not None else None,
        now=checked,
    )
    events: list[StudyEvent] = []
    notes: list[Note] = []
    if escalation.announce:
        stage = escalation.stage or 0
        assert watched.end is not None
        text = (
            f"At risk of missing {watched.end.describe()} (stage {stage}: "
            f"{figures.time_used:.0%} of the time used): {risk.message}"
        )
        events.append(StudyEvent("Warning", "AtRisk", text))
        notes.append(Note("study.at_risk", f"{escalation.since}:{stage}", risk.reason, text))
    elif escalation.cleared:
        events.append(StudyEvent("Normal", "BackOnSchedule", risk.message))
    status = DeadlineStatus(
        deadline=watched.deadline,
        setBy=watched.end.set_by if watched.end is not None else None,
        timeRemainingSeconds=int(figures.time_remaining),
        cellsNeeded=figures.cells_needed,
        requiredRate=_rate(figures.required_rate),
        currentRate=_rate(figures.current_rate),
        projectedCompletion=rfc3339(figures.projected_completion) if figures.projected_completion else None,
        bottleneckSurface=figures.bottleneck,
        checkedAt=checked,
        atRisk=risk.at_risk,
        atRiskSince=escalation.since,
        escalationStage=escalation.stage,
        missed=missed,
    )
    return DeadlineWatch(status, risk.at_risk, risk.reason, risk.summary, events, notes)


@dataclass(frozen=True)
class ShownDeadline:
    """The deadline as the new status shows it."""

    fresh: DeadlineStatus | None
    """With this decision's figures."""
    carried: DeadlineStatus | None
    """With the figures last written, while they still stand (a minute); None when they must refresh."""
    condition: Condition | None
    """The AtRisk condition to set, if any."""
    events: list[StudyEvent] = field(default_factory=list)
    """A warning as the study falls below its success rate."""


def shown_deadline(
    watch: DeadlineWatch,
    watched: Watched,
    *,
    missed: bool,
    low: LowSuccess | None,
    previous: StudyStatus,
    generation: int,
    now: datetime,
) -> ShownDeadline:
    """The deadline status and AtRisk condition of the new status.

    The study is at risk when it may miss its deadline (the deadline's reason wins) or when too
    few attempts pass (`LowSuccessRate`, see `success_rate`).
    """
    fresh = watch.status
    if fresh is None and watched.previous is not None:
        fresh = watched.previous.model_copy(update={"missed": missed})
    had = next((c for c in previous.conditions if c.type == AT_RISK), None)
    verdict: tuple[bool, str, str] | None = None
    if watch.status is not None and watch.at_risk:
        verdict = (True, watch.reason, watch.summary)
    elif low is not None:
        verdict = (True, LOW_SUCCESS_RATE, low.summary)
    elif watch.status is not None:
        verdict = (False, watch.reason, watch.summary)
    elif had is not None:
        verdict = (False, "NoDeadline", "The study has no deadline and enough of its attempts pass")
    condition = None
    events = []
    if verdict is not None:
        at_risk, reason, summary = verdict
        condition = condition_of(
            AT_RISK, at_risk, reason=reason, message=summary, previous=previous.conditions, generation=generation,
            now=now,
        )  # fmt: skip
        fell = reason == LOW_SUCCESS_RATE and not (had is not None and had.status == "True" and had.reason == reason)
        if low is not None and fell:
            events.append(StudyEvent("Warning", LOW_SUCCESS_RATE, low.message))
    carried = None if _stale(watched.previous, now) else _carried(fresh, watched.previous)
    return ShownDeadline(fresh, carried, condition, events)


def requeue_after(end: StudyEnd | None, status: StudyStatus, retry_in: float | None, *, now: datetime) -> float | None:
    """When to decide again unprompted: a retry due, the next deadline check, the study's end itself."""
    if end is None or status.state is None or is_terminal(status.state):
        return retry_in
    checked = status.deadline.checkedAt if status.deadline is not None else None
    try:
        last = parse_rfc3339(checked) if checked else now
    except ValueError:
        last = now
    waits = [DEADLINE_CHECK_SECONDS - (now - last).total_seconds()]
    until = (end.at - now).total_seconds()
    if until > 0:
        waits.append(until)
    check_in = max(MIN_REQUEUE_SECONDS, min(waits))
    return check_in if retry_in is None else min(retry_in, check_in)


def _stale(watched: DeadlineStatus | None, now: datetime) -> bool:
    """Whether the figures last written are a minute old (or unreadable)."""
    if watched is None or watched.checkedAt is None:
        return True
    try:
        checked = parse_rfc3339(watched.checkedAt)
    except ValueError:
        return True
    return (now - checked).total_seconds() >= DEADLINE_CHECK_SECONDS


def _carried(fresh: DeadlineStatus | None, watched: DeadlineStatus | None) -> DeadlineStatus | None:
    """`fresh` with the figures of `watched`: what the status shows between refreshes."""
    if fresh is None or watched is None:
        return None
    return fresh.model_copy(
        update={
            "deadline": watched.deadline,  # a paused study's time-out moves with the clock: shown as refreshed
            "timeRemainingSeconds": watched.timeRemainingSeconds,
            "cellsNeeded": watched.cellsNeeded,
            "requiredRate": watched.requiredRate,
            "currentRate": watched.currentRate,
            "projectedCompletion": watched.projectedCompletion,
            "bottleneckSurface": watched.bottleneckSurface,
            "checkedAt": watched.checkedAt,
        }
    )


def _rate(value: float | None) -> float | None:
    """Four significant digits: enough to read, few enough to keep the status tidy."""
    return float(f"{value:.4g}") if value is not None else None
