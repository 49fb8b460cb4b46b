"""Progress: how many cells are done, failed, in flight and waiting, overall and per slice.

`pending` includes cells waiting to retry; `failed` counts cells that failed for good and never
counts as completed, `blocked` the failed ones a person's acknowledgement may reopen; `skipped`
cells were never run because the deadline passed with every threshold met.
`percent` rounds down, so a study shows 100% only when every cell completed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bentham.api.manifest import Manifest
from bentham.api.status import CellCounts, Progress
from bentham.core.checkpoint import CellRecord
from bentham.core.tally import FIELDS as _FIELDS
from bentham.core.tally import Tally

_POSITIONS = range(len(_FIELDS))


def slice_count(manifest: Manifest) -> int:
    """The study's slices (surfaces x locations): what a `Tally` of its records counts by."""
    return len(manifest.surfaces) * len(manifest.locations)


def progress_of(manifest: Manifest, records: Sequence[CellRecord]) -> Progress:
    """The study's progress from its cell records (one per cell, in index order), counted afresh."""
    return progress_from(manifest, Tally.of(records, slice_count(manifest)))


def progress_from(manifest: Manifest, counted: Tally) -> Progress:
    """The study's progress from the tally of its cell records."""
    width, counts = len(_FIELDS), counted.counts
    stride = len(manifest.locations) * width  # one surface's slices lie together: each location's are a stride apart
    required = set(manifest.required_surface_ids)
    by_surface = {
        surface.id.value: _counts(counts, s * stride, (s + 1) * stride, width, required=surface.id in required)
        for s, surface in enumerate(manifest.surfaces)
    }
    by_location = {
        location.id.value: _counts(counts, loc * width, len(counts), stride, required=None)
        for loc, location in enumerate(manifest.locations)
    }
    total = len(counted.records)
    overall = dict(zip(_FIELDS, [sum(counts[field::width]) for field in _POSITIONS], strict=True))
    rate = overall["completed"] / total if total else 0.0
    return Progress(
        totalCells=total,
        completedCells=overall["completed"],
        failedCells=overall["failed"],
        executingCells=overall["executing"],
        pendingCells=overall["pending"],
        skippedCells=overall["skipped"],
        completionRate=rate,
        summary=f"{overall['completed']}/{total}",
        percent=f"{overall['completed'] * 100 // total if total else 0}%",
        bySurface=by_surface,
        byLocation=by_location,
    )


def _counts(counts: tuple[int, ...], start: int, stop: int, step: int, *, required: bool | None) -> CellCounts:
    """The counts of the slices in `counts` (`Tally.counts`) whose fields begin every `step` from `start` to `stop`."""
    sums = dict(zip(_FIELDS, [sum(counts[start + field : stop : step]) for field in _POSITIONS], strict=True))
    total = sums["completed"] + sums["failed"] + sums["executing"] + sums["pending"] + sums["skipped"]
    return CellCounts(total=total, required=required, **sums)  # blocked cells are failed ones: not added again
