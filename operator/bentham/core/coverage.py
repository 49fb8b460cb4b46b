"""What the counts mean for the study: is every required surface done, can it still make it.

A required surface meets its threshold when completed / total ≥ coverageThreshold. It can no
longer meet it once even every cell still open (pending, waiting, running) succeeding would
leave it short. Blocked cells (failed for a reason a person can fix) count as open here: a
surface short only because of them waits for a person (`at_risk_of_blocked`), it does not fail.
Both use the same comparison, so a surface whose every cell has settled either met its
threshold, was already found unreachable, or waits for a person: never none of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from bentham.api.status import CellCounts, Progress


@dataclass(frozen=True)
class Shortfall:
    """A required surface that cannot reach its threshold any more."""

    surface: str
    completed: int
    failed: int
    total: int
    threshold: float

    def describe(self) -> str:
        best = self.total - self.failed
        return (
            f"surface {self.surface}: {self.failed} of {self.total} cells failed for good, so at most "
            f"{best}/{self.total} can complete, below the coverage threshold {self.threshold:g}"
        )


def meets_threshold(completed: int, total: int, threshold: float) -> bool:
    """completed / total ≥ threshold (a surface with no cells has nothing to meet)."""
    return total == 0 or completed / total >= threshold


def required_surfaces(progress: Progress) -> dict[str, CellCounts]:
    """The counts of the surfaces that block completion."""
    return {surface: counts for surface, counts in progress.bySurface.items() if counts.required}


def shortfalls(progress: Progress, threshold: float) -> list[Shortfall]:
    """Required surfaces that can no longer reach `threshold`, in manifest order."""
    return [
        Shortfall(surface, counts.completed, counts.failed - counts.blocked, counts.total, threshold)
        for surface, counts in required_surfaces(progress).items()
        if not meets_threshold(_best(counts) + counts.blocked, counts.total, threshold)
    ]


def at_risk_of_blocked(progress: Progress, threshold: float) -> dict[str, int]:
    """Required surfaces that reach `threshold` only if a person reopens their blocked cells: id → blocked cells."""
    return {
        surface: counts.blocked
        for surface, counts in required_surfaces(progress).items()
        if counts.blocked and not meets_threshold(_best(counts), counts.total, threshold)
    }


def _best(counts: CellCounts) -> int:
    """The most cells of a slice that can still complete, blocked cells not reopened."""
    return counts.total - counts.failed - counts.skipped


def all_settled(progress: Progress) -> bool:
    """Whether every cell completed, failed, was blocked or skipped: none in flight or waiting to start."""
    return progress.pendingCells == 0 and progress.executingCells == 0


def thresholds_met(progress: Progress, threshold: float) -> bool:
    """Whether every required surface's completed/total already reaches `threshold`."""
    return all(meets_threshold(c.completed, c.total, threshold) for c in required_surfaces(progress).values())
