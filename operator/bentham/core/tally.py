"""What a study's cell records add up to, kept up to date by what changed rather than recounted.

A `Tally` counts one list of records: cells per state in each slice (surface x location), the
cells in flight and waiting to retry, and the attempts made. It also keeps the checkpoint's byte
of every cell and the reopened cells, so the checkpoint is packed without visiting every record
(`checkpoint.pack_tally`), and the frontier of the start order (`Frontier`), so a pass looking for
cells to start begins where the last one stopped. `Tally.of` counts a whole list;
`advanced` moves a tally to a later list of the same cells by visiting only the records that
changed. The decider changes records by replacing them (`CellRecord.moved`), so a record that is
the same object as before is unchanged, and finding the changed ones is one identity comparison
per cell, done in C. A pass over a 100,000-cell study where one Job finished then costs that
comparison and a handful of updates, where recounting every record cost most of the pass.

`Tally.of` is also the oracle: the property tests hold every advanced tally equal to the one
counted afresh from the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import is_not

from bentham.core.checkpoint import CellRecord, CellState

FIELDS = ("completed", "failed", "executing", "pending", "skipped", "blocked")
"""The counts of a slice, as `CellCounts` names them."""

_WIDTH = len(FIELDS)
# The fields (their positions in FIELDS) a cell in each state adds one to. A blocked cell is a failed one.
_ADDS: dict[CellState, tuple[int, ...]] = {
    CellState.COMPLETED: (0,),
    CellState.FAILED: (1,),
    CellState.BLOCKED: (1, 5),
    CellState.RUNNING: (2,),
    CellState.PENDING: (3,),
    CellState.RETRY_WAIT: (3,),
    CellState.SKIPPED: (4,),
}


@dataclass(frozen=True)
class Frontier:
    """How far into a start order no cell is waiting for its first start: the walk for cells to start begins here.

    `order` is the start order it was found in (a `core.ordering.StartOrder`), compared by identity;
    `required` and `optional` are positions in its two groups.
    """

    order: object
    required: int
    optional: int


@dataclass(frozen=True)
class Tally:
    """The counts of `records`, a study's cell records in index order."""

    records: tuple[CellRecord, ...]
    slice_count: int
    """Surfaces x locations: cell `index` is in slice `index % slice_count`."""
    counts: tuple[int, ...]
    """Per slice, the six FIELDS in order: `counts[slice * 6 + field]`."""
    running: frozenset[int]
    """Cells with an attempt in flight."""
    retry_waiting: frozenset[int]
    """Cells waiting to retry."""
    attempts: int
    """Attempts started, over every cell (the running ones included)."""
    codes: bytes
    """Per cell, the checkpoint's byte: `state << 5 | attempts`."""
    reopened: frozenset[int]
    """Cells a person reopened (attempts spent before it)."""
    frontier: Frontier | None = field(default=None, compare=False)
    """Where the last walk of a start order stopped; None once a started cell went back to pending."""

    @classmethod
    def of(cls, records: Sequence[CellRecord], slice_count: int) -> Tally:
        """`records` counted afresh."""
        later = tuple(records)
        codes = bytes([record.state << 5 | record.attempts for record in later])
        empty = cls((), slice_count, (0,) * (slice_count * _WIDTH), frozenset(), frozenset(), 0, codes, frozenset())
        return empty._moved(later, range(len(later)), fresh=True)

    def advanced(self, records: Sequence[CellRecord]) -> Tally:
        """The tally of `records`, a later list of the same cells, counting only the records that changed."""
        if records is self.records:
            return self
        later = tuple(records)
        if len(later) != len(self.records):
            return Tally.of(later, self.slice_count)
        changed = list(compress(range(len(later)), map(is_not, self.records, later)))
        return self._moved(later, changed, fresh=False) if changed else self

    def found(self, frontier: Frontier) -> Tally:
        """This tally, knowing the frontier of a start order in its records."""
        return replace(self, frontier=frontier)

    def changed(self, changes: Mapping[int, CellRecord]) -> Tally:
        """The tally once the records at these indices are replaced: for a caller that knows what it changed."""
        if not changes:
            return self
        later = list(self.records)
        for index, record in changes.items():
            later[index] = record
        return self._moved(tuple(later), changes.keys(), fresh=False)

    def _moved(self, later: tuple[CellRecord, ...], changed: Iterable[int], *, fresh: bool) -> Tally:
        counts = list(self.counts)
        running, retry_waiting, reopened = set(self.running), set(self.retry_waiting), set(self.reopened)
        codes = self.codes if fresh else bytearray(self.codes)
        attempts = self.attempts
        slice_count = self.slice_count
        frontier = self.frontier
        for index in changed:
            new = later[index]
            base = (index % slice_count) * _WIDTH
            if not fresh:
                old = self.records[index]
                for position in _ADDS[old.state]:
                    counts[base + position] -= 1
                attempts -= old.attempts
                running.discard(index)
                retry_waiting.discard(index)
                reopened.discard(index)
                codes[index] = new.state << 5 | new.attempts  # type: ignore[index]  # a bytearray when not fresh
                if new.state is CellState.PENDING and old.state is not CellState.PENDING:
                    frontier = None  # a cell waits for a start again: the next walk begins at the start
            for position in _ADDS[new.state]:
                counts[base + position] += 1
            attempts += new.attempts
            if new.state is CellState.RUNNING:
                running.add(index)
            elif new.state is CellState.RETRY_WAIT:
                retry_waiting.add(index)
            if new.spent:
                reopened.add(index)
        return Tally(
            later, slice_count, tuple(counts), frozenset(running), frozenset(retry_waiting), attempts,
            bytes(codes), frozenset(reopened), frontier,
        )  # fmt: skip

    def slice_counts(self, slice_index: int) -> dict[str, int]:
        """The six counts of one slice."""
        base = slice_index * _WIDTH
        return dict(zip(FIELDS, self.counts[base : base + _WIDTH], strict=True))

    @property
    def in_flight(self) -> int:
        return len(self.running)

    @property
    def completed(self) -> int:
        return sum(self.counts[0::_WIDTH])

    @property
    def finished_attempts(self) -> int:
        """Attempts that ended: every attempt started but those still running."""
        return self.attempts - len(self.running)
