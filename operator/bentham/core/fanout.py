"""Choosing the cells to start: fill the free slots, in the fair order, retries first.

Required surfaces' cells go before optional ones'. Within each group, cells whose retry is due
go first, then never-started cells, each in the fair start order: finishing begun cells first
keeps the number of cells waiting to retry (and so the checkpoint) small.

What a pass costs does not grow with the study: due retries are found among the cells waiting to
retry (the `Tally` keeps them), and never-started cells by walking the order from its frontier
(`tally.Frontier`: how far the last walk found no cell waiting for its first start), so a pass
looks at the cells it starts and at most those it passes over for a busy surface.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bentham.api.manifest import Manifest
from bentham.api.spec import Executor, StudySpec
from bentham.core.cells import surface_position
from bentham.core.checkpoint import CellRecord, CellState
from bentham.core.decision import JobToCreate
from bentham.core.ordering import StartOrder
from bentham.core.tally import Frontier, Tally


def in_flight_limit(spec: StudySpec, parallelism: int) -> int:
    """Cells allowed in flight: `parallelism`, and at most execution.maxConcurrency when written.

    With execution.maxConcurrency written and spec.executor.parallelism not, maxConcurrency is
    the parallelism.
    """
    execution = spec.manifest.execution
    ceiling = execution.maxConcurrency if execution is not None else None
    if ceiling is None:
        return parallelism
    return min(parallelism, ceiling) if "parallelism" in spec.executor.model_fields_set else ceiling


def per_surface_limit(manifest: Manifest) -> PerSurface | None:
    """execution.concurrencyPerSurface, when written."""
    execution = manifest.execution
    if execution is None or execution.concurrencyPerSurface is None:
        return None
    return PerSurface(execution.concurrencyPerSurface, lambda index: surface_position(manifest, index))


def effective_parallelism(executor: Executor, current: int | None) -> int:
    """Cells allowed in flight: the spec's, or a raised value the spec still allows.

    A value in status (raised when the study is at risk) stands only while it lies within
    [executor.parallelism, executor.maxParallelism]; so editing the spec always takes effect.
    """
    ceiling = executor.maxParallelism
    if current is not None and ceiling is not None and executor.parallelism <= current <= ceiling:
        return current
    return executor.parallelism


@dataclass(frozen=True)
class PerSurface:
    """execution.concurrencyPerSurface: at most `limit` cells of one surface in flight."""

    limit: int
    surface_of: Callable[[int], int]
    """The surface (its position) of a cell index."""


def cells_to_start(
    records: Sequence[CellRecord],
    order: StartOrder,
    *,
    capacity: int,
    now: datetime,
    per_surface: PerSurface | None = None,
) -> list[int]:
    """Up to `capacity` cells to start now, in the order they should start, the records counted afresh."""
    return _choose(Tally.of(records, 1), order, capacity=capacity, now=now, per_surface=per_surface)[0]


def _choose(
    counted: Tally, order: StartOrder, *, capacity: int, now: datetime, per_surface: PerSurface | None
) -> tuple[list[int], Frontier]:
    """Up to `capacity` cells to start now, and the frontier of `order` once they have started.

    Due retries are found among the cells waiting to retry, not by walking the order; never-started
    cells by walking each group of the order from the tally's frontier (its start, if the tally
    has none for this order), past cells that are running or settled.
    """
    records = counted.records
    chosen: list[int] = []
    busy: Counter[int] = Counter()
    if per_surface is not None:
        busy.update(per_surface.surface_of(i) for i in counted.running)

    def take(index: int) -> bool:
        """Chooses `index` unless its surface is at its limit."""
        if per_surface is not None:
            surface = per_surface.surface_of(index)
            if busy[surface] >= per_surface.limit:
                return False
            busy[surface] += 1
        chosen.append(index)
        return True

    frontier = counted.frontier
    if frontier is None or frontier.order is not order:
        frontier = Frontier(order, 0, 0)
    starts = [frontier.required, frontier.optional]
    due = _due_retries(counted, order, now)
    offset = 0
    for number, group in enumerate((order.required, order.optional)):
        for index in due:
            if len(chosen) >= capacity:
                break
            if offset <= order.positions[index] < offset + len(group):
                take(index)
        position, skipped = starts[number], None
        while position < len(group) and len(chosen) < capacity:
            index = group[position]
            if records[index].state is CellState.PENDING and not take(index) and skipped is None:
                skipped = position  # still waiting, for its surface: the next walk begins here
            position += 1
        starts[number] = skipped if skipped is not None else position
        offset += len(group)
    return chosen, Frontier(order, *starts)


def _due_retries(counted: Tally, order: StartOrder, now: datetime) -> list[int]:
    """The cells whose retry is due, in `order`: only the cells waiting to retry are visited."""
    records = counted.records
    due = [index for index in counted.retry_waiting if _retry_due(records[index], now)]
    if not due:
        return []
    positions = order.positions
    return sorted((index for index in due if index in positions), key=positions.__getitem__)


@dataclass(frozen=True)
class Started:
    """The cells started by one decision, and when the next retry falls due."""

    records: Sequence[CellRecord]
    jobs: list[JobToCreate]
    retry_in: float | None
    """Seconds until the next retry falls due, if one will."""
    counted: Tally
    """The tally of `records`."""


def start_cells(
    counted: Tally,
    order: StartOrder,
    *,
    parallelism: int,
    job_of: Callable[[int, int], JobToCreate],
    now: datetime,
    per_surface: PerSurface | None = None,
) -> Started:
    """Fills the free slots in `order` of the cells `counted` tallies: each chosen cell's next attempt
    runs, as `job_of(cell, attempt)`."""
    records = counted.records
    capacity = parallelism - counted.in_flight
    chosen, frontier = _choose(counted, order, capacity=capacity, now=now, per_surface=per_surface)
    starting = {
        index: records[index].moved(CellState.RUNNING, attempts=records[index].attempts + 1) for index in chosen
    }
    jobs = [job_of(index, record.attempts) for index, record in starting.items()]
    after = counted.changed(starting).found(frontier)
    upcoming = next_retry(after, now=now)
    return Started(after.records, jobs, (upcoming - now).total_seconds() if upcoming is not None else None, after)


def next_retry(counted: Tally, *, now: datetime) -> datetime | None:
    """The earliest retry still in the future, if any."""
    records = counted.records
    upcoming = [
        retry_at for i in counted.retry_waiting if (retry_at := records[i].retry_at) is not None and retry_at > now
    ]
    return min(upcoming, default=None)


def _retry_due(record: CellRecord, now: datetime) -> bool:
    return record.state is CellState.RETRY_WAIT and record.retry_at is not None and record.retry_at <= now
