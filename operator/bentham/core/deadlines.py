"""Deadline figures and the at-risk rule, as pure arithmetic over progress, running time and `now`.

- **cells needed**: for each required surface, the fewest further completions that bring
  completed/total up to the coverage threshold; summed. Optional surfaces never count.
- **required rate**: cells needed / hours left (cells per hour); 0 when nothing is needed, and
  absent once the deadline has passed with cells still needed.
- **current rate**: required-surface cells completed / hours of *running* time (paused time
  never counts, see `running_time`); absent before the study has run for a second.
- **projected completion**: now + cells needed / current rate.
- **bottleneck**: the required surface furthest below its threshold (completed/total), the
  first in manifest order on a tie.

A study with cells still needed is **at risk** when

- the deadline has passed (`DeadlinePassed`); or
- no required cell has completed yet and either `noProgressFraction` (default 25%) of the time
  from the study's creation to its deadline has passed, or less than 15 minutes remain
  (`NoProgress`; the original never flags a study that has done nothing); or
- its current rate is below `atRiskMargin` (default 0.8) x the required rate
  (`BehindSchedule`). Once at risk, it is back on schedule only when the current rate reaches
  the required rate: the gap between the two bars keeps a study near the margin from
  flapping in and out of risk on every reconcile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from bentham.api.status import Progress
from bentham.core.coverage import meets_threshold, required_surfaces

DEADLINE_CHECK_SECONDS = 60.0
"""A live study with a deadline is looked at again at least this often, and its figures refreshed."""
NO_PROGRESS_FLOOR = timedelta(minutes=15)
"""With nothing completed, less time left than this is at risk whatever the share of time used."""

THRESHOLDS_MET = "ThresholdsMet"
ON_SCHEDULE = "OnSchedule"
NO_PROGRESS = "NoProgress"
BEHIND_SCHEDULE = "BehindSchedule"
DEADLINE_PASSED = "DeadlinePassed"


@dataclass(frozen=True)
class DeadlineFigures:
    """Where a study stands against its deadline at one moment."""

    deadline: datetime
    time_remaining: float
    """Seconds until the deadline, 0 once it has passed."""
    time_used: float
    """Share of the time from creation to the deadline already gone (above 1 past the deadline)."""
    cells_needed: int
    completed_required: int
    running_seconds: float
    required_rate: float | None
    """Cells per hour; None once the deadline has passed with cells still needed."""
    current_rate: float | None
    """Required-surface cells per running hour; None before a second of running time."""
    projected_completion: datetime | None
    bottleneck: str | None


@dataclass(frozen=True)
class Risk:
    """The at-risk verdict, with a CamelCase reason and a sentence for people."""

    at_risk: bool
    reason: str
    message: str
    """With today's figures, for an event."""
    summary: str
    """Without figures, for the AtRisk condition: it changes only when the verdict does."""


def cells_needed_for(completed: int, total: int, threshold: float) -> int:
    """The fewest further completions that bring completed/total to `threshold`."""
    if meets_threshold(completed, total, threshold):
        return 0
    target = min(total, math.ceil(threshold * total))
    # ceil() of a product of floats can land one off; settle on meets_threshold's own answer.
    while target > completed + 1 and meets_threshold(target - 1, total, threshold):
        target -= 1
    while target < total and not meets_threshold(target, total, threshold):
        target += 1
    return target - completed


def deadline_figures(
    *,
    deadline: datetime,
    created_at: datetime,
    progress: Progress,
    threshold: float,
    running_seconds: float,
    now: datetime,
) -> DeadlineFigures:
    """The study's figures against `deadline` at `now`."""
    required = required_surfaces(progress)
    needs = {surface: cells_needed_for(c.completed, c.total, threshold) for surface, c in required.items()}
    cells_needed = sum(needs.values())
    completed = sum(c.completed for c in required.values())
    remaining = max(0.0, (deadline - now).total_seconds())
    window = (deadline - created_at).total_seconds()
    used = (now - created_at).total_seconds() / window if window > 0 else 1.0

    required_rate: float | None = None  # past the deadline with cells needed, no rate suffices
    if cells_needed == 0 or remaining > 0:
        required_rate = cells_needed / (remaining / 3600) if cells_needed else 0.0
    current_rate = completed / (running_seconds / 3600) if running_seconds >= 1 else None
    projected = None
    if cells_needed and current_rate:
        try:
            projected = now + timedelta(hours=cells_needed / current_rate)
        except OverflowError:
            projected = None  # beyond year 9999: no projection worth printing

    behind = {
        surface: threshold - required[surface].completed / required[surface].total
        for surface, need in needs.items()
        if need > 0
    }
    bottleneck = max(behind, key=lambda s: behind[s]) if behind else None  # max keeps the first on a tie
    return DeadlineFigures(
        deadline=deadline,
        time_remaining=remaining,
        time_used=max(0.0, used),
        cells_needed=cells_needed,
        completed_required=completed,
        running_seconds=running_seconds,
        required_rate=required_rate,
        current_rate=current_rate,
        projected_completion=projected,
        bottleneck=bottleneck,
    )


def assess_risk(figures: DeadlineFigures, *, was_at_risk: bool, margin: float, no_progress_fraction: float) -> Risk:
    """Whether the study is at risk of missing its deadline (the rule in the module docstring)."""
    f = figures
    if f.cells_needed == 0:
        met = "Every required surface meets its coverage threshold"
        return Risk(False, THRESHOLDS_MET, met, met)
    if f.time_remaining <= 0 or f.required_rate is None:
        return Risk(
            True,
            DEADLINE_PASSED,
            f"The deadline passed with {f.cells_needed} required cells still needed",
            "The deadline passed with required surfaces below their coverage thresholds",
        )
    needed = f"{f.cells_needed} required cells needed in {_duration(f.time_remaining)}"
    if f.completed_required == 0 or not f.current_rate:
        share = f"{f.time_used:.0%} of the time to the deadline used"
        if f.time_used >= no_progress_fraction or f.time_remaining < NO_PROGRESS_FLOOR.total_seconds():
            return Risk(
                True,
                NO_PROGRESS,
                f"No required cell has completed; {share}; {needed}",
                "No required cell has completed and the deadline is getting close",
            )
        return Risk(False, ON_SCHEDULE, f"No required cell has completed yet; {share}; {needed}", _ON_SCHEDULE)
    bar = f.required_rate if was_at_risk else margin * f.required_rate
    rates = f"current rate {f.current_rate:.1f}/h, required {f.required_rate:.1f}/h"
    if f.current_rate < bar:
        projection = (
            f", projected to finish at {f.projected_completion.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            if f.projected_completion is not None
            else ""
        )
        below = "the required rate" if was_at_risk else f"{margin:g} x the required rate"
        return Risk(
            True,
            BEHIND_SCHEDULE,
            f"Behind schedule: {rates} (below {below}); {needed}{projection}",
            "Behind schedule: at the current rate the study misses its deadline (see status.deadline)",
        )
    return Risk(False, ON_SCHEDULE, f"On schedule: {rates}; {needed}", _ON_SCHEDULE)


_ON_SCHEDULE = "On schedule to meet the coverage thresholds by the deadline"


def _duration(seconds: float) -> str:
    """`3h05m`, `12m`, `40s`: short enough for an event message."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{secs}s"
