"""Starting cells from the tally's frontier, and due retries from the cells waiting, choose what a whole walk would.

The oracle is the plain rule, written out: per group of the start order (required surfaces,
then optional ones), the due retries in order, then the never-started cells in order, each
taken unless its surface is at its limit, until the slots are full. Random histories move cells
between every state (back to pending too, which is when a frontier must be forgotten) and start
cells pass after pass, each pass from the tally the last one left, as the decider does.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from core_builders import T0, make_spec, manifest
from hypothesis import given, settings
from hypothesis import strategies as st

from bentham.api.manifest import Manifest
from bentham.api.spec import StudySpec
from bentham.core.checkpoint import CellRecord, CellState, pack_cells, pack_tally
from bentham.core.decision import JobToCreate
from bentham.core.fanout import PerSurface, per_surface_limit, start_cells
from bentham.core.ordering import StartOrder, open_start_order
from bentham.core.progress import slice_count
from bentham.core.tally import Tally

SURFACES = ("openai-api", "grok", "meta-ai")


def shaped(per_surface: int | None, order: str | None) -> Manifest:
    raw = make_spec(queries=4, surfaces=SURFACES, locations=("us-nyc", "uk-lon"), optional=("meta-ai",))
    execution: dict[str, object] = {}
    if per_surface is not None:
        execution["concurrencyPerSurface"] = per_surface
    if order is not None:
        execution["executionOrder"] = order
    raw["manifest"]["execution"] = execution or None
    return StudySpec.model_validate(raw).manifest


def record(state: CellState, attempts: int, spent: int, due_in: int) -> CellRecord:
    attempts = max(attempts, 1) if state is not CellState.PENDING else attempts
    retry_at = T0 + timedelta(seconds=due_in) if state is CellState.RETRY_WAIT else None
    return CellRecord(state, attempts, retry_at, min(spent, attempts))


records = st.builds(record, st.sampled_from(list(CellState)), st.integers(0, 5), st.integers(0, 2), st.integers(-3, 3))


def plain_choice(
    cells: list[CellRecord], order: StartOrder, capacity: int, per_surface: PerSurface | None
) -> list[int]:
    running = [i for i, r in enumerate(cells) if r.state is CellState.RUNNING]
    busy = Counter(per_surface.surface_of(i) for i in running) if per_surface is not None else Counter()
    chosen: list[int] = []
    for group in (order.required, order.optional):
        due = [i for i in group if cells[i].state is CellState.RETRY_WAIT and cells[i].retry_at <= T0]  # type: ignore[operator]
        fresh = [i for i in group if cells[i].state is CellState.PENDING]
        for index in due + fresh:
            if len(chosen) >= capacity:
                return chosen
            if per_surface is not None:
                if busy[per_surface.surface_of(index)] >= per_surface.limit:
                    continue
                busy[per_surface.surface_of(index)] += 1
            chosen.append(index)
    return chosen


def job_of(index: int, attempt: int) -> JobToCreate:
    return JobToCreate(name=f"c{index}-a{attempt}", cell=None, attempt=attempt, body={})  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    per_surface=st.sampled_from([None, 1, 2]),
    kind=st.sampled_from([None, "surface-first", "location-first"]),
    blocked=st.sampled_from([(), ("grok",)]),
    parallelism=st.integers(0, 9),
    first=st.lists(records, min_size=24, max_size=24),
    history=st.lists(st.lists(st.tuples(st.integers(0, 23), records), max_size=4), min_size=1, max_size=8),
)
def test_starts_from_the_frontier_choose_what_a_whole_walk_would(
    per_surface: int | None,
    kind: str | None,
    blocked: tuple[str, ...],
    parallelism: int,
    first: list[CellRecord],
    history: list[list[tuple[int, CellRecord]]],
) -> None:
    m = shaped(per_surface, kind)
    order, limit = open_start_order(m, blocked), per_surface_limit(m)
    assert open_start_order(m, blocked) is order  # the same object pass after pass: the frontier holds
    cells = list(first)
    tally = Tally.of(cells, slice_count(m))
    for edits in history:
        for index, new in edits:
            cells[index] = new
        tally = tally.changed(dict(edits))
        capacity = parallelism - tally.in_flight
        expected = plain_choice(cells, order, capacity, limit)

        started = start_cells(tally, order, parallelism=parallelism, job_of=job_of, now=T0, per_surface=limit)

        assert [job.name for job in started.jobs] == [f"c{i}-a{cells[i].attempts + 1}" for i in expected]
        for index in expected:
            cells[index] = cells[index].moved(CellState.RUNNING, attempts=cells[index].attempts + 1)
        assert started.counted == Tally.of(cells, slice_count(m))
        tally = started.counted


@settings(max_examples=100, deadline=None)
@given(st.lists(records, min_size=1, max_size=40))
def test_the_tally_packs_the_checkpoint_as_the_records_pack(cells: list[CellRecord]) -> None:
    assert pack_tally(Tally.of(cells, 1), base=T0) == pack_cells(cells, base=T0)


def test_a_cell_back_to_pending_behind_the_frontier_is_started_again() -> None:
    m = manifest(queries=3, surfaces=("openai-api",), locations=("us-nyc", "uk-lon"))
    order = open_start_order(m, ())
    tally = Tally.of([CellRecord()] * m.cell_count, slice_count(m))
    started = start_cells(tally, order, parallelism=2, job_of=job_of, now=T0)
    assert started.counted.frontier is not None and started.counted.frontier.required == 2

    # Its attempt was aborted: the first cell waits for a start again, behind the frontier.
    aborted = started.counted.changed({order.required[0]: CellRecord(CellState.PENDING, 1)})
    assert aborted.frontier is None
    again = start_cells(aborted, order, parallelism=2, job_of=job_of, now=T0)
    assert [job.name for job in again.jobs] == [f"c{order.required[0]}-a2"]
