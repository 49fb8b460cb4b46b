"""One worker per study: the single writer of its status, coalescing bursts of changes.

Any change to a study or its Jobs only *wakes* the study's worker. The worker waits a short
batch window, so that a burst of Job completions lands in one decision, then reads the world
(its Jobs from the Job index, the termination messages of its ended pods with one list), asks
the core for a decision and a write plan (`core.write_plan`), and carries the plan out in a
straight line: write the status, delete the Jobs whose outcomes it now holds, create the next
Jobs, post Events, queue notifications. Which status is fresher, what to hold back and what to
merge are the core's to say; the worker only remembers what the plan tells it to keep.

Every status write is conditional on the Study's version the status was decided from
(`KubeClient.replace_status`). When the API server refuses one because someone wrote the Study
since, the worker re-reads it and decides again from what is there; nothing else of that pass
goes out. Every write leaves only through the replica's write fence (`leadership.WriteFence`):
once the replica no longer leads, the first refused write stops the worker.

A Study is its uid, not its name (docs/architecture.md). A worker belongs to one uid: it reads
only the Jobs and pods labelled with that uid, writes the status only while the Study of its name
still has that uid, and stops for good once it finds its study gone. A study deleted and created
again under the same name gets a new worker, which inherits nothing from the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

from bentham.api.status import StudyStatus
from bentham.controller import stop_points
from bentham.controller.job_index import StudyKey
from bentham.controller.kube import KubeClient, StudyChanged, StudyRef, event_name
from bentham.controller.leadership import LeadershipLost
from bentham.controller.metrics import Metrics, StudyGauges
from bentham.controller.observe import created_at, job_sighting, pod_sighting
from bentham.controller.webhook_sender import WebhookSender
from bentham.core import (
    NOTHING_ASKED,
    CreateReport,
    Decision,
    Derived,
    ExecutorPolicy,
    Held,
    JobToCreate,
    ObservedJob,
    PodSighting,
    PricingTable,
    Refusal,
    StudyEvent,
    StudyVersion,
    WritePlan,
    decide,
    note_creations,
    observed_jobs,
    plan_write,
    refusal_of,
    rejected_attempts,
    status_to_decide_from,
    stored_status,
)

log = logging.getLogger(__name__)

DECISIONS = ThreadPoolExecutor(1, thread_name_prefix="bentham-decide")
"""Where studies are decided: one thread, off the event loop.

Deciding is CPU-bound Python, so under the GIL a second thread would only take turns with the
first. What the thread buys is the event loop's turn: the interpreter hands the GIL over every
5 ms (`sys.getswitchinterval()`), so a long decision (a 100,000-cell study's first pass after a
restart decodes its checkpoint and counts every cell) no longer holds the watches and the other
studies' workers for all of its length (`make bench-pass` measures both).
"""


async def decide_off_loop(**inputs: Any) -> Decision:
    """`core.decide(**inputs)`, in the decision thread."""
    return await asyncio.get_running_loop().run_in_executor(DECISIONS, partial(decide, **inputs))


JobSource = Callable[[StudyKey], Iterable[ObservedJob]]
"""A study's Jobs as the Job index holds them (`job_index.JobIndex.jobs`, fed by `job_watch`)."""

# Concurrent Job creations per study: enough to fill a wave quickly, few enough to be polite.
CREATE_CONCURRENCY = 16
ERROR_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 15.0)  # capped low: an outage that ends is noticed within 15 s
# How soon to look again for the pod of a finished Job whose termination message was not listed yet.
POD_RECHECK_S = 1.0
# Decisions in one pass at most, each taking in the Jobs the one before it had refused.
ROUNDS_PER_PASS = 4
# Events kept to post again after the API server could not take them, at most.
UNPOSTED_KEPT = 200


class StudyWorker:
    def __init__(
        self,
        key: StudyKey,
        kube: KubeClient,
        webhooks: WebhookSender,
        jobs: JobSource,
        metrics: Metrics,
        batch_window_s: float,
        status_interval_s: float,
        pricing: PricingTable | None = None,
        executor_policy: ExecutorPolicy | None = None,
    ) -> None:
        self.key = key
        self._kube = kube
        self._webhooks = webhooks
        self._metrics = metrics
        self._jobs = jobs
        self._batch_window_s = batch_window_s
        self._status_interval_s = status_interval_s
        self._pricing = pricing
        self._executor_policy = executor_policy
        self._body: dict[str, Any] = {}
        self._latest: StudyVersion | None = None  # the Study as our last status write, or re-read, left it
        self._written_at = float("-inf")  # time.monotonic() of our last status write
        self._held: Held | None = None  # decided, not written yet (see core.write_plan)
        self._decided: StudyStatus | None = None  # the last status decided, written or held
        self._derived: Derived | None = None  # what the last decision left for the next one
        self._messages: dict[str, PodSighting] = {}  # Job name -> its ended pod's termination message
        self._sightings: dict[str, ObservedJob] = {}  # Job name -> the last sighting of it this worker knows of
        self._created: CreateReport = NOTHING_ASKED  # what became of the Jobs the last carry-out asked for
        self._unposted: list[tuple[str, StudyEvent]] = []  # Events decided, written, not yet taken by the API server
        self._wake = asyncio.Event()
        self._requeue_after: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.inside_since: float | None = None  # time.monotonic() when the pass under way began (liveness)
        self.gone = False  # the study of this uid no longer exists: the worker does nothing more

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
        self._task = asyncio.create_task(self._run(), name=f"study:{self.key[0]}/uid={self.key[1]}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while not self.gone:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._requeue_after)
            if self._stored().status is not None:  # a new study's first pass has no burst to wait for
                await asyncio.sleep(self._batch_window_s)  # let the rest of a burst arrive
            self._wake.clear()
            self.inside_since = time.monotonic()
            try:
                with self._metrics.reconcile_seconds.time():
                    await self.reconcile()
                failures = 0
            except asyncio.CancelledError:
                raise
            except LeadershipLost as lost:
                log.warning("%s: %s; its worker stops", self.describe(), lost)
                return
            except Exception:  # the loop must survive anything one reconcile meets
                delay = ERROR_BACKOFF_S[min(failures, len(ERROR_BACKOFF_S) - 1)]
                failures += 1
                log.exception("reconcile of %s failed; retrying in %.0fs", self.describe(), delay)
                self._requeue_after = delay
            finally:
                self.inside_since = None
        log.info("%s is gone; its worker stops", self.describe())

    def describe(self) -> str:
        namespace, uid = self.key
        return f"study {namespace}/{(self._body.get('metadata') or {}).get('name')} (uid {uid})"

    def _stored(self) -> StudyVersion:
        """The study's status as the API server has it, and its version: ours (written or re-read), or the watch's."""
        version = (self._body.get("metadata") or {}).get("resourceVersion")
        return stored_status(StudyVersion(self._body.get("status"), version), self._latest)

    async def reconcile(self) -> None:
        """One level-triggered pass: observe, decide, carry out the write plan. Safe to repeat at any point.

        Jobs the API server refused are decided on at once: the pass decides again, told of them
        (`core.refusals`), as long as its last carry-out met a refusal the decision before it
        was not told of.
        """
        for _ in range(ROUNDS_PER_PASS):
            told = self._created
            await self._decide_and_carry_out()
            if self.gone or not self._created.refused_anew(told):
                return
        self._requeue_after = min(self._requeue_after or POD_RECHECK_S, POD_RECHECK_S)

    async def _decide_and_carry_out(self) -> None:
        body = self._body
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return  # the garbage collector is removing the study and everything it owns
        study = StudyRef(namespace=self.key[0], name=str(metadata.get("name")), uid=self.key[1])
        jobs = list(self._jobs(self.key))
        await self._read_messages(study.namespace, jobs)
        now = datetime.now(UTC)
        stored = self._stored()
        generation = int(metadata.get("generation") or 0)
        decision = await decide_off_loop(
            name=study.name,
            namespace=study.namespace,
            uid=study.uid,
            generation=generation,
            created_at=created_at(metadata) or now,
            spec=body.get("spec"),
            status=status_to_decide_from(stored, self._held),
            jobs=observed_jobs(jobs, self._messages, now) + rejected_attempts(self._created),
            now=now,
            derived=self._derived,
            pricing=self._pricing,
            executor_policy=self._executor_policy,
        )
        decision = note_creations(decision, self._created, generation=generation, now=now)
        self._decided, self._derived = decision.status, decision.derived
        plan = plan_write(
            stored,
            self._held,
            decision,
            since_last_write=time.monotonic() - self._written_at,
            interval=self._status_interval_s,
        )
        self._requeue_after = plan.requeue_after
        await self._carry_out(study, plan, stored, jobs)
        if any(job.phase != "running" and job.name not in self._messages for job in jobs):
            self._requeue_after = min(self._requeue_after or POD_RECHECK_S, POD_RECHECK_S)

    async def _read_messages(self, namespace: str, jobs: list[ObservedJob]) -> None:
        """Learns the termination messages of finished Jobs' pods, listing only this uid's ended pods it lacks.

        An ended pod's message never changes, so each is read once and kept while its Job exists.
        """
        names = {job.name: job.uid for job in jobs}  # a pod counts only for the Job (by uid) that controls it
        for gone in self._messages.keys() - names:
            del self._messages[gone]
        for gone in self._sightings.keys() - names:
            del self._sightings[gone]
        unread = sorted(job.name for job in jobs if job.phase != "running" and job.name not in self._messages)
        for pod in await self._kube.finished_pods(namespace, self.key[1], unread):
            sighting = pod_sighting(pod, names)
            if sighting is not None and sighting.terminated:
                self._messages[sighting.job_name] = sighting

    async def _carry_out(self, study: StudyRef, plan: WritePlan, stored: StudyVersion, jobs: list[ObservedJob]) -> None:
        """Status first, then deletions beside creations, then announcements: every prefix is safe to crash in.

        The status holds the finished attempts' outcomes before their Jobs go, and a slot is
        reused only once its attempt is recorded, so Jobs in flight never exceed `parallelism`. A
        crash after the status write leaves cells marked running without a Job; the next pass
        starts those same attempts, under the same names. The write finds the Study as it was
        decided from (`stored`), or none of the pass goes out.

        What the plan announces goes out once the status that records it is written, even when a
        deletion or a creation then fails: the next decision, made from that status, will not
        announce it again. An Event the API server cannot take now is posted again by the next
        pass, under the same name, so it is never posted twice.
        """
        if plan.write is not None:
            stop_points.reached("status-write")
            try:
                written = await self._kube.replace_status(study, plan.write, str(stored.resource_version))
            except StudyChanged as changed:
                await self._reread(study, changed)
                return
            if written is None:
                self.gone = True  # for good: a uid never comes back, and a new study of the name is not ours
                return
            self._latest, self._written_at = StudyVersion(plan.write, written), time.monotonic()
            self._metrics.cells_completed.inc(plan.newly_completed)
            self._metrics.cells_failed.inc(plan.newly_failed)
        self._held = plan.held
        self._unposted += [(event_name(study.name), event) for event in plan.events]
        # Queued now that the status records what they announce; delivery never blocks this loop.
        self._webhooks.enqueue(study.namespace, (self._body.get("spec") or {}).get("notifications"), plan.notifications)
        doomed = set(plan.delete)
        # Beside the creations, not before them: a deletion goes through the API server one Job at a
        # time, and nothing created waits on a finished Job being gone.
        deleting = asyncio.ensure_future(
            self._kube.delete_jobs(
                study.namespace, study.uid, [(job.cell_index, job.attempt) for job in jobs if job.name in doomed]
            )
        )
        try:
            self._created = await self._create(study, plan.create)
            if plan.create:
                stop_points.reached("jobs-created")
        finally:
            try:
                await deleting
            finally:
                await self._post_events(study)

    async def _post_events(self, study: StudyRef) -> None:
        unposted = []
        for name, event in self._unposted:
            if not await self._kube.post_event(study, name, event.type, event.reason, event.message):
                unposted.append((name, event))
        self._unposted = unposted[-UNPOSTED_KEPT:]

    async def _reread(self, study: StudyRef, changed: StudyChanged) -> None:
        """After a refused write: the Study as it is now replaces all this worker believed, and it decides again."""
        log.info("%s: %s; deciding again from the Study as it is now", self.describe(), changed)
        fresh = await self._kube.read_study(study)
        if fresh is None or (fresh.get("metadata") or {}).get("uid") != study.uid:
            self.gone = True
            return
        self._body = fresh
        self._latest = StudyVersion(fresh.get("status"), (fresh.get("metadata") or {}).get("resourceVersion"))
        self._held = None  # decided from a version that is no more
        self.wake()

    async def _create(self, study: StudyRef, jobs: list[JobToCreate]) -> CreateReport:
        """Creates `jobs`; the report says which of them the API server refused, and how."""
        limit = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create(job: JobToCreate) -> Refusal | None:
            async with limit:
                answer = await self._kube.create_job(study.namespace, job.body)
            return refusal_of(job, answer, study_uid=study.uid) if answer is not None else None

        for job in jobs:  # before the request: its watch event may come before the answer
            if (sighting := job_sighting(job.body)) is not None:
                self._sightings[sighting.name] = sighting

        refusals = await asyncio.gather(*(create(job) for job in jobs))
        return CreateReport(asked=len(jobs), refusals=tuple(r for r in refusals if r is not None))

    def gauges(self) -> StudyGauges:
        status = self._decided
        return StudyGauges(
            state=status.state if status is not None else None,
            at_risk=status is not None and status.deadline is not None and status.deadline.atRisk,
            live_jobs=sum(1 for _ in self._jobs(self.key)),
        )


class Workers:
    """The workers of every study the operator watches."""

    def __init__(
        self,
        kube: KubeClient,
        webhooks: WebhookSender,
        metrics: Metrics,
        *,
        batch_window_s: float,
        status_interval_s: float,
        pricing: PricingTable | None = None,
        executor_policy: ExecutorPolicy | None = None,
    ) -> None:
        self._kube = kube
        self._webhooks = webhooks
        self._metrics = metrics
        self._batch_window_s = batch_window_s
        self._status_interval_s = status_interval_s
        self._pricing = pricing
        self._executor_policy = executor_policy
        self._workers: dict[StudyKey, StudyWorker] = {}
        self.jobs: JobSource | None = None

    def see(self, key: StudyKey, body: Mapping[str, Any]) -> None:
        """Hands the Study of this uid to its worker, started on first sight."""
        worker = self._workers.get(key)
        if worker is None:
            assert self.jobs is not None, "the Job index is handed over at start, before any study is seen"
            worker = self._workers[key] = StudyWorker(
                key,
                self._kube,
                self._webhooks,
                self.jobs,
                self._metrics,
                self._batch_window_s,
                self._status_interval_s,
                self._pricing,
                self._executor_policy,
            )
            worker.start()
        worker.see(body)

    def saw_job(self, key: StudyKey, sighting: ObservedJob) -> None:
        worker = self._workers.get(key)
        if worker is not None:
            worker.saw_job(sighting)

    async def forget(self, key: StudyKey) -> None:
        """Stops the worker of this uid, and no other: a study of the same name with a new uid keeps its own."""
        worker = self._workers.pop(key, None)
        if worker is not None:
            await worker.stop()

    async def stop_all(self) -> None:
        for key in list(self._workers):
            await self.forget(key)

    def gauges(self) -> list[StudyGauges]:
        return [worker.gauges() for worker in list(self._workers.values()) if not worker.gone]

    def longest_pass(self, now: float) -> tuple[str, float] | None:
        """The study whose worker has been inside its pass the longest, and for how many seconds; None if none is."""
        inside = [(w.describe(), now - w.inside_since) for w in self._workers.values() if w.inside_since is not None]
        return max(inside, key=lambda pair: pair[1], default=None)

    def __len__(self) -> int:
        return len(self._workers)
