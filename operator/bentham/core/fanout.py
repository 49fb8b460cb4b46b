"""Choosing the cells to start: fill the free slots, in the fair order, retries first.

Required surfaces' cells go before optional ones'. Within each group, cells whose retry is due
go first, then never-started cells, each in the fair start order: finishing begun cells first
keeps the number of cells waiting to retry (and so the checkpoint) small.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bentham.api.spec import Executor
from bentham.core.checkpoint import CellRecord, CellState
from bentham.core.decision import JobToCreate
from bentham.core.ordering import StartOrder


def effective_parallelism(executor: Executor, current: int | None) -> int:
    """Cells allowed in flight: the spec's, or a raised value the spec still allows.

    A value in status (raised when the study is at risk) stands only while it lies within
    [executor.parallelism, executor.maxParallelism]; so editing the spec always takes effect.
    """
    ceiling = executor.maxParallelism
    if current is not None and ceiling is not None and executor.parallelism <= current <= ceiling:
        return current
    return executor.parallelism


def in_flight(records: Sequence[CellRecord]) -> int:
    """Cells with an attempt running."""
    return sum(1 for record in records if record.state is CellState.RUNNING)


def cells_to_start(records: Sequence[CellRecord], order: StartOrder, *, capacity: int, now: datetime) -> list[int]:
    """Up to `capacity` cells to start now, in the order they should start."""
    chosen: list[int] = []
    for group in (order.required, order.optional):
        for wanted in (_retry_due, _never_started):
            for index in group:
                if len(chosen) >= capacity:
                    return chosen
                if wanted(records[index], now):
                    chosen.append(index)
    return chosen


@dataclass(frozen=True)
class Started:
    """The cells started by one decision, and when the next retry falls due."""

    records: list[CellRecord]
    jobs: list[JobToCreate]
    retry_in: float | None
    """Seconds until the next retry falls due, if one will."""


def start_cells(
    records: Sequence[CellRecord],
    order: StartOrder,
    *,
    parallelism: int,
    job_of: Callable[[int, int], JobToCreate],
    now: datetime,
) -> Started:
    """Fills the free slots in `order`: each chosen cell's next attempt runs, as `job_of(cell, attempt)`."""
    updated = list(records)
    jobs = []
    for index in cells_to_start(updated, order, capacity=parallelism - in_flight(updated), now=now):
        updated[index] = updated[index].moved(CellState.RUNNING, attempts=updated[index].attempts + 1)
        jobs.append(job_of(index, updated[index].attempts))
    upcoming = next_retry(updated, now=now)
    return Started(updated, jobs, (upcoming - now).total_seconds() if upcoming is not None else None)


def next_retry(records: Sequence[CellRecord], *, now: datetime) -> datetime | None:
    """The earliest retry still in the future, if any."""
    upcoming = [r.retry_at for r in records if r.retry_at is not None and r.retry_at > now]
    return min(upcoming, default=None)


def _retry_due(record: CellRecord, now: datetime) -> bool:
    return record.state is CellState.RETRY_WAIT and record.retry_at is not None and record.retry_at <= now


def _never_started(record: CellRecord, now: datetime) -> bool:
    return record.state is CellState.PENDING
