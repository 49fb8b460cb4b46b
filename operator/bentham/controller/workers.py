"""One worker per study: the single writer of its status, coalescing bursts of changes.

Any change to a study or its Jobs only *wakes* the study's worker. The worker waits a short
batch window, so that a burst of Job completions lands in one decision, then reads the world
(its Jobs from kopf's index, the termination messages of its ended pods with one list), asks
the core what to do, and applies the answer: write the status, delete the Jobs whose outcomes
it now holds, create the next Jobs, and post Events.

A status that only moves counts may wait to be written (`core.pacing` says how long):
meanwhile the worker keeps it, decides from it, and starts Jobs from it, but deletes nothing
and announces nothing until it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bentham.controller.kube import KubeClient, StudyRef
from bentham.controller.metrics import Metrics, StudyGauges
from bentham.controller.notifier import Notifier
from bentham.controller.observe import PodSighting, job_sighting, observed_jobs, parse_timestamp, pod_sighting
from bentham.core.cell_events import merge_cell_events
from bentham.core.decision import ObservedJob, StudyEvent
from bentham.core.pacing import hold_for
from bentham.core.reconcile import Decision, decide
from bentham.core.states import TERMINAL_STATES

log = logging.getLogger(__name__)

StudyKey = tuple[str, str]  # (namespace, the study's name as its Jobs' `bentham.io/study` label)
JobSource = Callable[[StudyKey], Iterable[ObservedJob]]
"""A study's Jobs as kopf's index holds them."""

# Concurrent Job creations per study: enough to fill a wave quickly, few enough to be polite.
CREATE_CONCURRENCY = 16
ERROR_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
# How soon to look again for the pod of a finished Job whose termination message was not listed yet.
POD_RECHECK_S = 1.0
# The ended pods of at most this many Jobs per list: its label selector names each Job.
PODS_PER_LIST = 100
# An unfinished study is decided again at least this often, woken or not: a Job deleted by someone
# else wakes nobody (kopf calls no index function for a deletion), and this is when it is noticed.
RESYNC_S = 30.0


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
    def __init__(
        self,
        key: StudyKey,
        kube: KubeClient,
        notifier: Notifier,
        jobs: JobSource,
        metrics: Metrics,
        batch_window_s: float,
        status_interval_s: float,
    ) -> None:
        self.key = key
        self._kube = kube
        self._notifier = notifier
        self._metrics = metrics
        self._jobs = jobs
        self._batch_window_s = batch_window_s
        self._status_interval_s = status_interval_s
        self._body: dict[str, Any] = {}
        self._written_status: dict[str, Any] | None = None
        self._written_at = float("-inf")  # time.monotonic() of our last status write
        self._held_status: dict[str, Any] | None = None  # decided, not written yet (see core.pacing)
        self._held_events: list[StudyEvent] = []
        self._messages: dict[str, PodSighting] = {}  # Job name -> its ended pod's termination message
        self._sightings: dict[str, ObservedJob] = {}  # Job name -> the last sighting of it this worker knows of
        self._wake = asyncio.Event()
        self._requeue_after: float | None = None
        self._task: asyncio.Task[None] | None = None

    def see(self, body: Mapping[str, Any]) -> None:
        """Takes the latest Study object from the watch and wakes the worker."""
        self._body = dict(body)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def saw_job(self, sighting: ObservedJob) -> None:
        """Wakes the worker if the Job changed in a way the core would see: a Job it did not start, or one that ended.

        Most Job events are the Job controller's bookkeeping (active and ready counts, the pod's
        finalizer) and change nothing in a sighting; a pass for each would only repeat the last.
        """
        if self._sightings.get(sighting.name) != sighting:
            self._sightings[sighting.name] = sighting
            self.wake()

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
            if self._stored_status() is not None:  # a new study's first pass has no burst to wait for
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

    def _stored_status(self) -> dict[str, Any] | None:
        """The study's status as the API server has it: our last write, or the watch's if newer."""
        return fresher_status(self._body.get("status"), self._written_status)

    def _latest_status(self) -> dict[str, Any] | None:
        """The status to decide from: the one held back from writing, if any, else the stored one."""
        return fresher_status(self._stored_status(), self._held_status)

    async def reconcile(self) -> None:
        """One level-triggered pass: observe, decide, apply. Safe to repeat at any point."""
        body = self._body
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return  # the garbage collector is removing the study and everything it owns
        study = StudyRef(namespace=self.key[0], name=str(metadata.get("name")), uid=str(metadata.get("uid")))
        jobs = list(self._jobs(self.key))
        await self._read_messages(study.namespace, jobs)
        now = datetime.now(UTC)
        status = self._latest_status()
        decision = decide(
            name=study.name,
            namespace=study.namespace,
            uid=study.uid,
            generation=int(metadata.get("generation") or 0),
            created_at=parse_timestamp(metadata.get("creationTimestamp")) or now,
            spec=body.get("spec"),
            status=status,
            jobs=observed_jobs(jobs, self._messages, now),
            now=now,
        )
        requeue_after = await self._apply(study, decision)
        if decision.status.get("state") not in TERMINAL_STATES:
            requeue_after = min(requeue_after or RESYNC_S, RESYNC_S)
        if any(job.phase != "running" and job.name not in self._messages for job in jobs):
            requeue_after = min(requeue_after or POD_RECHECK_S, POD_RECHECK_S)
        self._requeue_after = requeue_after

    async def _read_messages(self, namespace: str, jobs: list[ObservedJob]) -> None:
        """Learns the termination messages of finished Jobs' pods, listing only the ended pods it lacks.

        An ended pod's message never changes, so each is read once and kept while its Job exists.
        """
        names = {job.name for job in jobs}
        for gone in self._messages.keys() - names:
            del self._messages[gone]
        for gone in self._sightings.keys() - names:
            del self._sightings[gone]
        unread = sorted(job.name for job in jobs if job.phase != "running" and job.name not in self._messages)
        for start in range(0, len(unread), PODS_PER_LIST):
            for pod in await self._kube.finished_pods(namespace, self.key[1], unread[start : start + PODS_PER_LIST]):
                sighting = pod_sighting(pod)
                if sighting is not None and sighting.terminated and sighting.job_name in names:
                    self._messages[sighting.job_name] = sighting

    async def _apply(self, study: StudyRef, decision: Decision) -> float | None:
        """Status first, then deletions, then creations: every prefix of that is safe to crash in.

        The status holds the finished attempts' outcomes before their Jobs go, and a slot is
        reused only once its attempt is recorded, so Jobs in flight never exceed `parallelism`. A
        crash after the status write leaves cells marked running without a Job; the next pass
        starts those same attempts, under the same names. A status held back (`core.pacing`)
        deletes nothing and announces nothing; it only starts Jobs, which a later pass adopts,
        and finished Jobs wait for the write that records them.

        Returns when to decide again at the latest, in seconds (None: only when woken).
        """
        stored = self._stored_status()
        requeue_after = decision.requeue_after
        events = decision.events
        if decision.status != stored:
            wait = hold_for(
                stored, decision, since_write_s=time.monotonic() - self._written_at, interval_s=self._status_interval_s
            )
            if wait > 0:
                self._held_status = decision.status
                self._held_events.extend(decision.events)
                await self._create(study, decision)
                return min(requeue_after, wait) if requeue_after is not None else wait
            if not await self._kube.replace_status(study, decision.status):
                return None  # the study is gone
            self._count_outcomes(stored, decision.status)
            self._written_status, self._written_at = decision.status, time.monotonic()
            events = merge_cell_events([*self._held_events, *decision.events])
        self._held_status, self._held_events = None, []
        await asyncio.gather(*(self._kube.delete_job(study.namespace, name) for name in decision.delete))
        await self._create(study, decision)
        for event in events:
            await self._kube.post_event(study, event.type, event.reason, event.message)
        # Queued only now that the status records what they announce; delivery never blocks this loop.
        self._notifier.enqueue(
            study.namespace, (self._body.get("spec") or {}).get("notifications"), decision.notifications
        )
        return requeue_after

    async def _create(self, study: StudyRef, decision: Decision) -> None:
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(body: dict[str, Any]) -> None:
            async with limit:
                await self._kube.create_job(study.namespace, body)

        for job in decision.create:  # before the request: its watch event may come before the answer
            if (sighting := job_sighting(job.body)) is not None:
                self._sightings[sighting.name] = sighting

        await asyncio.gather(*(create(job.body) for job in decision.create))

    def _count_outcomes(self, previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> None:
        before, after = _progress(previous), _progress(current)
        self._metrics.cells_completed.inc(max(0, after.get("completedCells", 0) - before.get("completedCells", 0)))
        self._metrics.cells_failed.inc(max(0, after.get("failedCells", 0) - before.get("failedCells", 0)))

    def gauges(self) -> StudyGauges:
        status = self._latest_status() or {}
        return StudyGauges(
            state=status.get("state"),
            at_risk=bool((status.get("deadline") or {}).get("atRisk")),
            live_jobs=sum(1 for _ in self._jobs(self.key)),
        )


def _progress(status: Mapping[str, Any] | None) -> Mapping[str, int]:
    return (status or {}).get("progress") or {}


class Workers:
    """The workers of every study the operator watches."""

    def __init__(
        self, kube: KubeClient, notifier: Notifier, metrics: Metrics, *, batch_window_s: float, status_interval_s: float
    ) -> None:
        self._kube = kube
        self._notifier = notifier
        self._metrics = metrics
        self._batch_window_s = batch_window_s
        self._status_interval_s = status_interval_s
        self._workers: dict[StudyKey, StudyWorker] = {}
        self.jobs: JobSource | None = None

    def see(self, key: StudyKey, body: Mapping[str, Any]) -> None:
        worker = self._workers.get(key)
        if worker is None:
            assert self.jobs is not None, "the Job index is handed over before the first study is seen"
            worker = self._workers[key] = StudyWorker(
                key,
                self._kube,
                self._notifier,
                self.jobs,
                self._metrics,
                self._batch_window_s,
                self._status_interval_s,
            )
            worker.start()
        worker.see(body)

    def saw_job(self, key: StudyKey, sighting: ObservedJob) -> None:
        worker = self._workers.get(key)
        if worker is not None:
            worker.saw_job(sighting)

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
