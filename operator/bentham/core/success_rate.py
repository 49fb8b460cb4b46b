"""`completionCriteria.minSuccessRate`: a warning when too few attempts pass, never a verdict.

The success rate is the share of finished attempts that passed: cells completed (each passed
exactly once) over every attempt that has ended, retries and attempts made before a person
reopened a cell included, the ones in flight not. It is judged once `MIN_FINISHED` attempts have
ended, so the first failures of a study (or a tiny study's) do not make it look doomed. Below
the rate the study is at risk with reason `LowSuccessRate` (the AtRisk condition, and one
Warning event each time it falls below), unless its deadline's verdict is at risk, which wins.
It never fails, holds or slows a study: coverage and the deadline decide that.
"""

from __future__ import annotations

from dataclasses import dataclass

from bentham.core.tally import Tally

LOW_SUCCESS_RATE = "LowSuccessRate"
MIN_FINISHED = 10
"""Attempts that must have ended before the rate is judged: fewer say too little."""


@dataclass(frozen=True)
class SuccessRate:
    passed: int
    finished: int

    @property
    def share(self) -> float:
        return self.passed / self.finished if self.finished else 1.0


@dataclass(frozen=True)
class LowSuccess:
    """The study's success rate is below the manifest's minimum."""

    summary: str
    """Without figures, for the AtRisk condition: it changes only when the verdict does."""
    message: str
    """With today's figures, for the event announcing it."""


def success_rate_from(counted: Tally) -> SuccessRate:
    """Passed attempts over finished attempts, from the records' tally."""
    return SuccessRate(counted.completed, counted.finished_attempts)


def low_success(counted: Tally, minimum: float) -> LowSuccess | None:
    """The warning, while enough attempts have ended and too few of them passed; else None."""
    rate = success_rate_from(counted)
    if rate.finished < MIN_FINISHED or rate.share >= minimum:
        return None
    return LowSuccess(
        f"Fewer attempts pass than completionCriteria.minSuccessRate ({minimum:.0%}); see the failed cells",
        f"{rate.passed} of {rate.finished} finished attempts passed ({rate.share:.0%}), below "
        f"completionCriteria.minSuccessRate ({minimum:.0%}); the study carries on",
    )
