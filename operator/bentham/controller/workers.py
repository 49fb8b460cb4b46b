"""One worker per study: the single writer of its status, coalescing bursts of changes.

Any change to a study, its Jobs or their pods only *wakes* the study's worker. The worker waits
a short batch window, so that a burst of Job completions lands in one decision, then reads
the world, asks the core what to do, and applies the answer: write the status once, delete the
Jobs whose outcomes it now holds, create the next Jobs, and post Events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bentham.controller.kube import KubeWriter, StudyRef
from bentham.controller.metrics import Metrics, StudyGauges
from bentham.controller.notifier import Notifier
from bentham.controller.observe import PodSighting, observed_jobs, parse_timestamp
from bentham.core.decision import ObservedJob
from bentham.core.reconcile import Decision, decide

log = logging.getLogger(__name__)

StudyKey = tuple[str, str]  # (namespace, the study's name as its Jobs' `bentham.io/study` label)

# Concurrent Job creations per study: enough to fill a wave quickly, few enough to be polite.
CREATE_CONCURRENCY = 16
ERROR_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Sources:
    """Where a worker reads the Jobs and pods of its study (kopf's live indexes)."""

    jobs: Callable[[StudyKey], Iterable[ObservedJob]]
    pods: Callable[[StudyKey], Iterable[PodSighting]]


def checkpoint_sequence(status: Mapping[str, Any] | None) -> int:
    checkpoint = (status or {}).get("checkpoint") or {}
    sequence = checkpoint.get("sequence")
    return sequence if isinstance(sequence, int) else -1


def fresher_status(observed: Mapping[str, Any] | None, written: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The status to decide from: what we last wrote, unless the watch has shown a newer one.

    The watch can lag behind our own writes; deciding from a stale checkpoint would re-run
    cells whose outcomes are already recorded and whose Jobs are already deleted.
    """
    if written is not None and checkpoint_sequence(written) >= checkpoint_sequence(observed):
        return dict(written)
    return dict(observed) if observed is not None else None


class StudyWorker:
    def __init__(self, key: StudyKey, writer: KubeWriter, notifier: Notifier, sources: Sources, metrics: Metrics,
                 batch_window_s: float) -> None:
        self.key = key
        self._writer = writer
        self._notifier = notifier
        self._metrics = metrics
        self._sources = sources
        self._batch_window_s = batch_window_s
        self._body: dict[str, Any] = {}
        self._written_status: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._requeue_after: float | None = None
        self._task: asyncio.Task[None] | None = None

    def see(self, body: Mapping[str, Any]) -> None:
        """Takes the latest Study object from the watch and wakes the worker."""
        self._body = dict(body)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"study:{self.key[0]}/{self.key[1]}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._requeue_after)
            await asyncio.sleep(self._batch_window_s)  # let the rest of a burst arrive
            self._wake.clear()
            try:
                with self._metrics.reconcile_seconds.time():
                    await self.reconcile()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything one reconcile meets
                delay = ERROR_BACKOFF_S[min(failures, len(ERROR_BACKOFF_S) - 1)]
                failures += 1
                log.exception("reconcile of %s/%s failed; retrying in %.0fs", *self.key, delay)
                self._requeue_after = delay

    async def reconcile(self) -> None:
        """One level-triggered pass: observe, decide, apply. Safe to repeat at any point."""
        body = self._body
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return  # the garbage collector is removing the study and everything it owns
        study = StudyRef(namespace=self.key[0], name=str(metadata.get("name")), uid=str(metadata.get("uid")))
        now = datetime.now(UTC)
        pods = {pod.job_name: pod for pod in self._sources.pods(self.key)}
        status = fresher_status(body.get("status"), self._written_status)
        decision = decide(
            name=study.name,
            namespace=study.namespace,
            uid=study.uid,
            generation=int(metadata.get("generation") or 0),
            created_at=parse_timestamp(metadata.get("creationTimestamp")) or now,
            spec=body.get("spec"),
            status=status,
            jobs=observed_jobs(self._sources.jobs(self.key), pods, now),
            now=now,
        )
        await self._apply(study, status, decision)
        self._requeue_after = decision.requeue_after

    async def _apply(self, study: StudyRef, previous: Mapping[str, Any] | None, decision: Decision) -> None:
        """Status first, then deletions, then creations: every prefix of that is safe to crash in.

        The status holds the finished attempts' outcomes before their Jobs go, and the Jobs of
        recorded attempts go before new ones come, so live Jobs never exceed `parallelism`. A
        crash after the status write leaves cells marked running without a Job; the next pass
        starts those same attempts, under the same names.
        """
        if decision.status != previous:
            if await self._writer.replace_status(study, decision.status) is None:
                return  # the study is gone
            self._written_status = decision.status
            self._count_outcomes(previous, decision.status)
        await asyncio.gather(*(self._writer.delete_job(study.namespace, name) for name in decision.delete))
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(body: dict[str, Any]) -> None:
            async with limit:
                await self._writer.create_job(study.namespace, body)

        await asyncio.gather(*(create(job.body) for job in decision.create))
        for event in decision.events:
            await self._writer.post_event(study, event.type, event.reason, event.message)
        # Queued only now that the status records what they announce; delivery never blocks this loop.
        self._notifier.enqueue(study.namespace, (self._body.get("spec") or {}).get("notifications"),
                               decision.notifications)


    def _count_outcomes(self, previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
        before, after = _progress(previous), _progress(current)
        self._metrics.cells_completed.inc(max(0, after.get("completedCells", 0) - before.get("completedCells", 0)))
        self._metrics.cells_failed.inc(max(0, after.get("failedCells", 0) - before.get("failedCells", 0)))

    def gauges(self) -> StudyGauges:
        status = fresher_status(self._body.get("status"), self._written_status) or {}
        return StudyGauges(
            state=status.get("state"),
            at_risk=bool((status.get("deadline") or {}).get("atRisk")),
            live_jobs=sum(1 for _ in self._sources.jobs(self.key)),
        )


def _progress(status: Mapping[str, Any] | None) -> Mapping[str, int]:
    return (status or {}).get("progress") or {}


class Workers:
    """The workers of every study the operator watches."""

    def __init__(self, writer: KubeWriter, notifier: Notifier, metrics: Metrics, batch_window_s: float) -> None:
        self._writer = writer
        self._notifier = notifier
        self._metrics = metrics
        self._batch_window_s = batch_window_s
        self._workers: dict[StudyKey, StudyWorker] = {}
        self.sources: Sources | None = None

    def see(self, key: StudyKey, body: Mapping[str, Any]) -> None:
        worker = self._workers.get(key)
        if worker is None:
            assert self.sources is not None, "sources are set before the first study is seen"
            worker = self._workers[key] = StudyWorker(
                key, self._writer, self._notifier, self.sources, self._metrics, self._batch_window_s
            )
            worker.start()
        worker.see(body)

    def wake(self, key: StudyKey) -> None:
        worker = self._workers.get(key)
        if worker is not None:
            worker.wake()

    async def forget(self, key: StudyKey) -> None:
        worker = self._workers.pop(key, None)
        if worker is not None:
            await worker.stop()

    async def stop_all(self) -> None:
        for key in list(self._workers):
            await self.forget(key)

    def gauges(self) -> list[StudyGauges]:
        return [worker.gauges() for worker in list(self._workers.values())]

    def __len__(self) -> int:
        return len(self._workers)

