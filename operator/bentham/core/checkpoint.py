"""Per-cell records, packed into the status's checkpoint so a study resumes after any crash.

A cell is `pending` (never started, or its attempt was aborted), `running` (an attempt in
flight), `retry_wait` (its last attempt failed, the next may start at `retry_at`), `completed`,
`failed` (for good), `skipped` (never run: the deadline passed with every threshold met) or
`blocked` (failed for a reason a person can fix, on a required surface: counted as failed until
a person's acknowledgement reopens it with a fresh budget of attempts). With the attempts started
so far, and for a reopened cell the attempts spent before it was reopened, that is all the core
needs to resume.

Format (Checkpoint.version 1) of `checkpoint.cells`:

    base64( zlib( varint N
                  N bytes, one per cell in index order: state << 5 | attempts
                  for each retry_wait cell, in index order: varint ms of retry_at after timestamp
                  [only when a cell was reopened: varint R, then R times
                   varint index gap from the previous reopened cell (+1), varint attempts spent] ) )

- state is 3 bits (0 pending, 1 running, 2 retry_wait, 3 completed, 4 failed, 5 skipped,
  6 blocked), attempts 5 bits (0-31; maxRetriesPerCell is at most 10, so a cell can be reopened
  at least twice);
- varints are unsigned LEB128; retry times are whole milliseconds after `checkpoint.timestamp`
  (also to the millisecond), and a retry already due when the checkpoint is written is stored
  as 0, i.e. due at `timestamp`;
- zlib squeezes the runs a study is made of (all pending, then all completed): 100,000 cells
  take a few kilobytes, and even incompressible ones stay near 1.4 bytes per cell.

`inFlight` lists the Jobs of running cells, for people; the core derives them from the cells.
`sequence` grows by one, and `timestamp` moves to now, only when a cell's record changes, so a
reconcile that changes nothing writes the same status.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING

from bentham.api.status import Checkpoint
from bentham.core.timestamps import parse_rfc3339, rfc3339_millis, truncate_to_millis

if TYPE_CHECKING:
    from bentham.core.spec_read import SpecRead
    from bentham.core.tally import Tally

FORMAT_VERSION = 1
MAX_ATTEMPTS = 31
# A manifest has at most 1,000 x 20 x 50 cells; refuse to inflate far beyond that.
_MAX_INFLATED_BYTES = 16 * 1024 * 1024


class CellState(IntEnum):
    PENDING = 0
    RUNNING = 1
    RETRY_WAIT = 2
    COMPLETED = 3
    FAILED = 4
    SKIPPED = 5
    BLOCKED = 6


SETTLED_STATES = frozenset({CellState.COMPLETED, CellState.FAILED, CellState.SKIPPED, CellState.BLOCKED})
OPEN_STATES = frozenset({CellState.PENDING, CellState.RETRY_WAIT})
"""Cells that have not settled and have no attempt in flight: waiting to start."""


@dataclass(frozen=True)
class CellRecord:
    """Where one cell stands."""

    state: CellState = CellState.PENDING
    attempts: int = 0
    """Attempts started so far, the running one included."""
    retry_at: datetime | None = None
    """For retry_wait only: when the next attempt may start."""
    spent: int = 0
    """Attempts made before a person reopened the cell: they do not count against its budget."""

    def __post_init__(self) -> None:
        if not 0 <= self.spent <= self.attempts <= MAX_ATTEMPTS:
            raise ValueError(f"need 0 <= spent ({self.spent}) <= attempts ({self.attempts}) <= {MAX_ATTEMPTS}")
        if (self.retry_at is not None) != (self.state is CellState.RETRY_WAIT):
            raise ValueError("retry_at is set exactly for retry_wait cells")

    @property
    def budget_used(self) -> int:
        """Attempts that count against the cell's budget: those since it was last reopened."""
        return self.attempts - self.spent

    def moved(self, state: CellState, *, attempts: int | None = None, retry_at: datetime | None = None) -> CellRecord:
        """This cell in `state` (with `attempts`, if given), keeping what it spent before a reopening.

        Records without a retry time are shared: a study of 100,000 cells holds a few hundred record
        objects, not 100,000 for the garbage collector to walk (a full collection over that many
        took ~15 ms of a pass). A record is immutable, so sharing one changes nothing but memory.
        """
        attempts = self.attempts if attempts is None else attempts
        if retry_at is not None:
            return CellRecord(state, attempts, retry_at, self.spent)
        key = (state, attempts, self.spent)
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = CellRecord(state, attempts, None, self.spent)
        return shared


_SHARED: dict[tuple[CellState, int, int], CellRecord] = {}
"""Records without a retry time, one per value (at most 7 states x 32 x 32), handed out by `CellRecord.moved`."""


PENDING = CellRecord()


class CheckpointUnreadable(ValueError):
    """The checkpoint cannot be decoded: it was not written by this format."""


def fresh_records(cell_count: int) -> list[CellRecord]:
    """Every cell pending, never attempted."""
    return [PENDING] * cell_count


def pack_cells(records: Sequence[CellRecord], *, base: datetime) -> str:
    """The packed form of `records`; retry times are stored relative to `base` (whole ms)."""
    return _pack(
        bytes([record.state << 5 | record.attempts for record in records]),
        [record.retry_at for record in records if record.retry_at is not None],
        [(index, record.spent) for index, record in enumerate(records) if record.spent],
        base=base,
    )


def pack_tally(counted: Tally, *, base: datetime) -> str:
    """The packed form of the tally's records (`pack_cells`), from what the tally keeps: no record is visited
    but those waiting to retry and those reopened."""
    records = counted.records
    return _pack(
        counted.codes,
        [records[index].retry_at for index in sorted(counted.retry_waiting)],
        [(index, records[index].spent) for index in sorted(counted.reopened)],
        base=base,
    )


def _pack(codes: bytes, retry_times: list[datetime | None], reopened: list[tuple[int, int]], *, base: datetime) -> str:
    start = truncate_to_millis(base)
    raw = bytearray(_varint(len(codes)))
    raw.extend(codes)
    for retry_at in retry_times:
        assert retry_at is not None
        raw.extend(_varint(max(0, _millis(retry_at - start))))
    if reopened:
        raw.extend(_varint(len(reopened)))
        last = -1
        for index, spent in reopened:
            raw.extend(_varint(index - last))
            raw.extend(_varint(spent))
            last = index
    return base64.b64encode(zlib.compress(bytes(raw), 9)).decode("ascii")


def unpack_cells(packed: str, *, base: datetime | None) -> list[CellRecord]:
    """The records of a packed string; raises CheckpointUnreadable on anything else."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(packed, validate=True), _MAX_INFLATED_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise CheckpointUnreadable("the cells are truncated or larger than any study")
    except (binascii.Error, zlib.error, ValueError) as error:
        raise CheckpointUnreadable(f"the cells are not packed cell records: {error}") from error
    count, position = _read_varint(raw, 0)
    if position + count > len(raw):
        raise CheckpointUnreadable(f"the cells promise {count} records but hold {len(raw) - position}")
    # Identical records share one object: 100,000 pending cells are one CellRecord.
    shared: dict[int, CellRecord] = {}
    records: list[CellRecord] = []
    waiting: list[tuple[int, int]] = []
    for index, byte in enumerate(raw[position : position + count]):
        state_bits, attempts = byte >> 5, byte & 0x1F
        if state_bits > max(CellState):
            raise CheckpointUnreadable(f"cell {index} has no state {state_bits}")
        if state_bits == CellState.RETRY_WAIT:
            waiting.append((index, attempts))
            records.append(PENDING)  # replaced below, once its retry time is read
            continue
        record = shared.get(byte)
        if record is None:
            record = shared[byte] = CellRecord(CellState(state_bits), attempts)
        records.append(record)
    position += count
    if waiting and base is None:
        raise CheckpointUnreadable("cells wait to retry but the checkpoint has no timestamp")
    start = truncate_to_millis(base) if base is not None else None
    for index, attempts in waiting:
        millis, position = _read_varint(raw, position)
        assert start is not None
        records[index] = CellRecord(CellState.RETRY_WAIT, attempts, start + timedelta(milliseconds=millis))
    if position < len(raw):
        position = _read_reopened(raw, position, records)
    if position != len(raw):
        raise CheckpointUnreadable(f"{len(raw) - position} unexpected bytes after the cells")
    return records


def _read_reopened(raw: bytes, position: int, records: list[CellRecord]) -> int:
    """Reads the reopened cells' spent attempts into `records`; returns the position after them."""
    count, position = _read_varint(raw, position)
    if count == 0:
        raise CheckpointUnreadable("an empty list of reopened cells (the writer leaves it out)")
    index = -1
    for _ in range(count):
        gap, position = _read_varint(raw, position)
        spent, position = _read_varint(raw, position)
        index += gap
        if gap == 0 or index >= len(records) or not 0 < spent <= records[index].attempts:
            raise CheckpointUnreadable(f"reopened cell {index} with {spent} attempts spent does not fit the cells")
        record = records[index]
        records[index] = CellRecord(record.state, record.attempts, record.retry_at, spent)
    return position


def read_records(checkpoint: Checkpoint | None) -> list[CellRecord] | None:
    """The records of a checkpoint; None when there is none yet. Raises CheckpointUnreadable."""
    if checkpoint is None or not checkpoint.cells:
        return None
    if checkpoint.version != FORMAT_VERSION:
        raise CheckpointUnreadable(f"checkpoint version {checkpoint.version} is not {FORMAT_VERSION}")
    try:
        base = parse_rfc3339(checkpoint.timestamp) if checkpoint.timestamp else None
    except ValueError as error:
        raise CheckpointUnreadable(f"checkpoint timestamp {checkpoint.timestamp!r}: {error}") from error
    return unpack_cells(checkpoint.cells, base=base)


@dataclass(frozen=True)
class Derived:
    """What one decision worked out that the next may reuse instead of working it out again.

    The shell keeps it beside the status it came with and hands it back; the decider reuses it
    only while it matches the status it decides from, so a stale or foreign one costs nothing.
    """

    checkpoint_cells: str
    checkpoint_timestamp: str | None
    records: tuple[CellRecord, ...]
    """The cell records that checkpoint packs (decoding 100,000 of them is most of a pass)."""
    tally: Tally | None = None
    """Their counts (`core.tally`), which the next decision advances instead of counting again."""
    spec: SpecRead | None = None
    """The spec as this decision read it (`core.spec_read`), kept while the spec stays the same."""

    def packs(self, checkpoint: Checkpoint) -> bool:
        """Whether these are the records `checkpoint` packs."""
        return checkpoint.cells == self.checkpoint_cells and checkpoint.timestamp == self.checkpoint_timestamp


def records_of(checkpoint: Checkpoint | None, derived: Derived | None) -> list[CellRecord] | None:
    """The checkpoint's records: those a decision derived while they match it, else decoded (`read_records`)."""
    if derived is not None and checkpoint is not None and derived.packs(checkpoint):
        return list(derived.records)
    return read_records(checkpoint)


def aborted(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Running attempts being stopped go back to pending, their attempts still counted."""
    return [r.moved(CellState.PENDING) if r.state is CellState.RUNNING else r for r in records]


def skip_open(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Cells waiting to start (never started, or waiting to retry) are skipped: they will not run."""
    return [r.moved(CellState.SKIPPED) if r.state in OPEN_STATES else r for r in records]


def unskip(records: Sequence[CellRecord]) -> list[CellRecord]:
    """Skipped cells wait to start again (the deadline moved later)."""
    return [r.moved(CellState.PENDING) if r.state is CellState.SKIPPED else r for r in records]


def write_checkpoint(
    records: Sequence[CellRecord],
    *,
    previous: Checkpoint | None,
    previous_records: Sequence[CellRecord] | None,
    in_flight: list[str],
    now: datetime,
    counted: Tally | None = None,
) -> Checkpoint:
    """The checkpoint of `records`: the previous one unchanged when no record changed.

    `counted`, a tally of `records` when the caller has one, packs them without visiting each.
    """
    if previous is not None and previous_records is not None and _same(previous_records, records):
        return previous.model_copy(update={"inFlight": in_flight})
    written = truncate_to_millis(now)
    return Checkpoint(
        version=FORMAT_VERSION,
        sequence=(previous.sequence if previous is not None else 0) + 1,
        timestamp=rfc3339_millis(written),
        cells=pack_tally(counted, base=written) if counted is not None else pack_cells(records, base=written),
        inFlight=in_flight,
    )


def _same(before: Sequence[CellRecord], after: Sequence[CellRecord]) -> bool:
    """Whether two lists of records are equal (list comparison takes records that are the same objects as equal,
    without comparing them)."""
    return before is after or (len(before) == len(after) and list(before) == list(after))


def checkpointed_retries(counted: Tally, checkpoint: Checkpoint) -> dict[int, CellRecord]:
    """The cells waiting to retry exactly as `checkpoint`, which packs the tally's records, reads them back:
    their retry times in its whole milliseconds. No other record changes in the round trip."""
    if not checkpoint.timestamp:
        return {}
    start = truncate_to_millis(parse_rfc3339(checkpoint.timestamp))
    records = counted.records
    return {
        index: record.moved(
            record.state, retry_at=start + timedelta(milliseconds=max(0, _millis(record.retry_at - start)))
        )
        for index in counted.retry_waiting
        if (record := records[index]).retry_at is not None
    }


def _millis(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(raw):
            raise CheckpointUnreadable("the cells end in the middle of a number")
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position
        if shift > 63:
            raise CheckpointUnreadable("a number in the cells is too long")
