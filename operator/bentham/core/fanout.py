"""Choosing the cells to start: fill the free slots, in the fair order, retries first.

Required surfaces' cells go before optional ones'. Within each group, cells whose retry is due
go first, then never-started cells, each in the fair start order: finishing begun cells first
keeps the number of cells waiting to retry (and so the checkpoint) small.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from bentham.api.manifest import Manifest
from bentham.api.spec import Executor, StudySpec
from bentham.core.cells import surface_position
from bentham.core.checkpoint import CellRecord, CellState
from bentham.core.decision import JobToCreate
from bentham.core.ordering import StartOrder
from bentham.core.tally import Tally


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
    running: Collection[int] | None = None,
    retry_waiting: Collection[int] | None = None,
) -> list[int]:
    """Up to `capacity` cells to start now, in the order they should start.

    `running` and `retry_waiting` are the cells in flight and waiting to retry, when known (a `Tally`
    keeps them): with no retry due, the order is not walked looking for one.
    """
    chosen: list[int] = []
    busy: Counter[int] = Counter()
    if per_surface is not None:
        if running is None:
            running = [i for i, record in enumerate(records) if record.state is CellState.RUNNING]
        busy.update(per_surface.surface_of(i) for i in running)
    kinds: tuple[Callable[[CellRecord, datetime], bool], ...] = (_retry_due, _never_started)
    if retry_waiting is not None and not any(_retry_due(records[index], now) for index in retry_waiting):
        kinds = (_never_started,)
    for group in (order.required, order.optional):
        for wanted in kinds:
            for index in group:
                if len(chosen) >= capacity:
                    return chosen
                if not wanted(records[index], now):
                    continue
                if per_surface is not None:
                    surface = per_surface.surface_of(index)
                    if busy[surface] >= per_surface.limit:
                        continue
                    busy[surface] += 1
                chosen.append(index)
    return chosen


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
    chosen = cells_to_start(
        records, order, capacity=capacity, now=now, per_surface=per_surface,
        running=counted.running, retry_waiting=counted.retry_waiting,
    )  # fmt: skip
    starting = {
        index: records[index].moved(CellState.RUNNING, attempts=records[index].attempts + 1) for index in chosen
    }
    jobs = [job_of(index, record.attempts) for index, record in starting.items()]
    after = counted.changed(starting)
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


def _never_started(record: CellRecord, now: datetime) -> bool:
    return record.state is CellState.PENDING
