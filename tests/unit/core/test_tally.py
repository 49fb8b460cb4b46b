"""`Tally`: counts advanced by what changed equal the counts taken afresh, on random histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core_builders import manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from bentham.core.checkpoint import CellRecord, CellState
from bentham.core.progress import progress_from, progress_of, slice_count
from bentham.core.success_rate import SuccessRate, success_rate_from
from bentham.core.tally import Tally

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SHAPE = manifest(queries=3, surfaces=("openai-api", "grok"), locations=("us-nyc", "uk-lon", "de-ber"))
CELLS = SHAPE.cell_count


def record(state: CellState, attempts: int) -> CellRecord:
    attempts = max(attempts, 1) if state is not CellState.PENDING else attempts
    return CellRecord(state, attempts, T0 + timedelta(seconds=attempts) if state is CellState.RETRY_WAIT else None)


records = st.builds(record, st.sampled_from(list(CellState)), st.integers(0, 5))
histories = st.tuples(
    st.lists(records, min_size=CELLS, max_size=CELLS),
    st.lists(st.lists(st.tuples(st.integers(0, CELLS - 1), records), max_size=8), max_size=12),
)


def oracle(cells: list[CellRecord]) -> dict[str, object]:
    """What progress and the success rate say, counted one record at a time, the plain way."""
    return {
        "completed": sum(r.state is CellState.COMPLETED for r in cells),
        "failed": sum(r.state in (CellState.FAILED, CellState.BLOCKED) for r in cells),
        "executing": sum(r.state is CellState.RUNNING for r in cells),
        "pending": sum(r.state in (CellState.PENDING, CellState.RETRY_WAIT) for r in cells),
        "skipped": sum(r.state is CellState.SKIPPED for r in cells),
        "running": {i for i, r in enumerate(cells) if r.state is CellState.RUNNING},
        "retry_waiting": {i for i, r in enumerate(cells) if r.state is CellState.RETRY_WAIT},
        "rate": SuccessRate(
            passed=sum(r.state is CellState.COMPLETED for r in cells),
            finished=sum(r.attempts - (r.state is CellState.RUNNING) for r in cells),
        ),
    }


@settings(max_examples=150, deadline=None)
@given(histories)
def test_an_advanced_tally_is_the_tally_counted_afresh(
    history: tuple[list[CellRecord], list[list[tuple[int, CellRecord]]]],
) -> None:
    first, edits = history
    cells = list(first)
    tally = Tally.of(cells, slice_count(SHAPE))
    for batch in edits:
        cells = list(cells)  # a new list, as the decider makes: unchanged records are the same objects
        for index, new in batch:
            cells[index] = new
        told = tally.changed(dict(batch))  # a caller that knows what it changed (the last write of an index wins)
        tally = tally.advanced(cells)

        assert tally == Tally.of(cells, slice_count(SHAPE)) == told
        progress, expected = progress_from(SHAPE, tally), oracle(cells)
        assert progress == progress_of(SHAPE, cells)
        assert (progress.completedCells, progress.failedCells, progress.executingCells) == (
            expected["completed"], expected["failed"], expected["executing"],
        )  # fmt: skip
        assert (progress.pendingCells, progress.skippedCells) == (expected["pending"], expected["skipped"])
        assert (tally.running, tally.retry_waiting) == (expected["running"], expected["retry_waiting"])
        assert success_rate_from(tally) == expected["rate"]


def test_a_record_replaced_by_an_equal_one_is_counted_once() -> None:
    cells = [record(CellState.RUNNING, 1)] * CELLS
    tally = Tally.of(cells, slice_count(SHAPE))
    again = tally.advanced([CellRecord(CellState.RUNNING, 1) for _ in range(CELLS)])  # equal, not the same objects

    assert again == tally and again.in_flight == CELLS


def test_a_list_of_another_length_is_counted_afresh() -> None:
    tally = Tally.of([record(CellState.COMPLETED, 1)] * 4, slice_count(SHAPE))

    assert tally.advanced([record(CellState.PENDING, 0)] * 6) == Tally.of(
        [record(CellState.PENDING, 0)] * 6, slice_count(SHAPE)
    )
