"""What the counts mean for the study: is every required surface done, can it still make it.

A required surface meets its threshold when completed / total ≥ coverageThreshold. It can no
longer meet it once even every cell still open (pending, waiting, running) succeeding would
leave it short. Both use the same comparison, so a surface whose every cell has settled either
met its threshold or was already found unreachable: never neither.
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
        Shortfall(surface, counts.completed, counts.failed, counts.total, threshold)
        for surface, counts in required_surfaces(progress).items()
        if not meets_threshold(counts.total - counts.failed, counts.total, threshold)
    ]


def required_settled(progress: Progress) -> bool:
    """Whether every cell of every required surface completed or failed for good."""
    return all(c.pending == 0 and c.executing == 0 for c in required_surfaces(progress).values())


def thresholds_met(progress: Progress, threshold: float) -> bool:
    """Whether every required surface's completed/total already reaches `threshold`."""
    return all(meets_threshold(c.completed, c.total, threshold) for c in required_surfaces(progress).values())
