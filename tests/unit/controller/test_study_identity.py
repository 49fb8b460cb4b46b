"""A Study is its uid: Study and Job events reach the worker of the event's uid, never another study's of the same name.

kopf handles each object's events in a stream of its own, keyed by uid, so the events of a study
deleted and created again under its name can be handled in any order between the two uids: the
old uid's DELETED after the new uid's ADDED. These tests play that order through the real
handlers and workers. The workers never reach the API here: each study arrives with a status, so
a worker's first pass waits its batch window, set to an hour, and the tests end long before.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import kopf

from bentham.controller.handlers import study_event
from bentham.controller.job_index import JobIndex, StudyKey, job_entry
from bentham.controller.kube import KubeClient
from bentham.controller.metrics import Metrics
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import StudyWorker, Workers
from bentham.core.decision import ObservedJob
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY, LABEL_STUDY_UID

NAMESPACE = "ns"
OLD, NEW = "0000-old", "1111-new"


def study_body(uid: str, name: str = "again") -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": "bentham.io/v1alpha1",
            "kind": "Study",
            "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid},
            "spec": {},
            "status": {"state": "executing"},
        }
    )


def job_labels(uid: str, cell: int = 0, name: str = "again") -> dict[str, str]:
    return {LABEL_STUDY: name, LABEL_STUDY_UID: uid, LABEL_CELL_INDEX: str(cell), LABEL_ATTEMPT: "1"}


def job_body(job_name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": job_name, "namespace": NAMESPACE, "labels": labels}, "status": {}}


def sighting(job_name: str, cell: int = 0) -> ObservedJob:
    return ObservedJob(
        name=job_name,
        cell_index=cell,
        attempt=1,
        phase="running",
        termination_message=None,
        failure_reason=None,
        finished_at=None,
    )


def operator_memo(index: dict[StudyKey, list[ObservedJob]] | None = None) -> kopf.Memo:
    """What the startup handler leaves in kopf's memo, with `index` as the Job index, its first list made."""
    # The kube client and webhook sender are never reached: see the module's docstring.
    workers = Workers(
        cast(KubeClient, None), cast(WebhookSender, None), Metrics(), batch_window_s=3600, status_interval_s=5
    )
    jobs = index if index is not None else {}
    workers.jobs = lambda key: jobs.get(key, ())
    memo = kopf.Memo()
    memo.workers = workers
    memo.jobs_listed = asyncio.Event()
    memo.jobs_listed.set()
    return memo


def worker_of(memo: kopf.Memo, uid: str) -> StudyWorker | None:
    workers: Workers = memo.workers
    return workers._workers.get((NAMESPACE, uid))


async def settle() -> None:
    """Lets the workers' tasks run up to their batch windows (and cancelled ones finish)."""
    for _ in range(3):
        await asyncio.sleep(0)


async def handle(handler: Any, **kwargs: Any) -> Any:
    """Calls a kopf handler with only the arguments it reads (kopf's types list every one kopf passes)."""
    return await handler(**kwargs)


async def event(memo: kopf.Memo, type_: str, uid: str) -> None:
    await handle(study_event, type=type_, body=study_body(uid), namespace=NAMESPACE, memo=memo)


def test_a_late_deleted_of_the_old_uid_stops_only_the_old_uids_worker() -> None:
    async def scenario() -> None:
        memo = operator_memo()
        await event(memo, "ADDED", OLD)
        old = worker_of(memo, OLD)
        await event(memo, "ADDED", NEW)  # the same name, handled before the old uid's DELETED
        new = worker_of(memo, NEW)
        assert old is not None and new is not None and old is not new
        await settle()

        await event(memo, "DELETED", OLD)
        await settle()

        assert worker_of(memo, OLD) is None
        assert worker_of(memo, NEW) is new
        assert old._task is not None and old._task.cancelled()
        assert new._task is not None and not new._task.done()
        assert len(memo.workers) == 1
        await memo.workers.stop_all()

    asyncio.run(scenario())


def test_a_new_uid_under_an_old_name_gets_a_worker_of_its_own_that_inherits_nothing() -> None:
    async def scenario() -> None:
        memo = operator_memo()
        await event(memo, "ADDED", OLD)
        old = worker_of(memo, OLD)
        assert old is not None
        old.saw_job(sighting("again-0ldh4-c0-a1"))
        await event(memo, "DELETED", OLD)

        await event(memo, "ADDED", NEW)

        new = worker_of(memo, NEW)
        assert new is not None and new is not old
        assert new.key == (NAMESPACE, NEW)
        assert new._sightings == {} and new._body["metadata"]["uid"] == NEW
        await memo.workers.stop_all()

    asyncio.run(scenario())


def test_the_job_index_keys_jobs_by_the_uid_label_and_wakes_only_that_uids_worker() -> None:
    async def scenario() -> None:
        memo = operator_memo()
        await event(memo, "ADDED", OLD)
        await event(memo, "ADDED", NEW)

        index = JobIndex(memo.workers.saw_job)
        index.apply("ADDED", job_entry(job_body("again-0ldh4-c0-a1", job_labels(OLD))))

        assert list(index.jobs((NAMESPACE, OLD))) == [sighting("again-0ldh4-c0-a1")]
        assert list(index.jobs((NAMESPACE, NEW))) == []
        old, new = worker_of(memo, OLD), worker_of(memo, NEW)
        assert old is not None and new is not None
        assert set(old._sightings) == {"again-0ldh4-c0-a1"}
        assert new._sightings == {}
        await memo.workers.stop_all()

    asyncio.run(scenario())


def test_each_worker_counts_only_its_uids_jobs_and_a_gone_one_counts_nothing() -> None:
    index = {
        (NAMESPACE, OLD): [sighting("again-0ldh4-c0-a1", 0), sighting("again-0ldh4-c1-a1", 1)],
        (NAMESPACE, NEW): [sighting("again-n3wh4-c0-a1", 0)],
    }

    async def scenario() -> None:
        memo = operator_memo(index)
        await event(memo, "ADDED", OLD)
        await event(memo, "ADDED", NEW)
        assert sorted(g.live_jobs for g in memo.workers.gauges()) == [1, 2]

        old = worker_of(memo, OLD)
        assert old is not None
        old.gone = True  # as when its status write finds the name taken by the new uid
        assert [g.live_jobs for g in memo.workers.gauges()] == [1]
        await memo.workers.stop_all()

    asyncio.run(scenario())


def test_no_study_reaches_a_worker_before_the_first_job_list_is_in() -> None:
    async def scenario() -> None:
        memo = operator_memo()
        memo.jobs_listed = asyncio.Event()  # the Job watch's first list is not in yet
        handled = asyncio.create_task(event(memo, "ADDED", OLD))
        await settle()
        assert not handled.done() and worker_of(memo, OLD) is None  # it would think every running Job gone

        memo.jobs_listed.set()
        await handled

        assert worker_of(memo, OLD) is not None
        await memo.workers.stop_all()

    asyncio.run(scenario())
