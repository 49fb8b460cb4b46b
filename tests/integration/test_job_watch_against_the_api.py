"""The operator's own Job watch (controller/job_watch.py) against the real API server.

The watch runs here in the test's process, over a real client, in a namespace of the test's own
that the session's operator ignores. The faults are injected where the stream opens a watch: a
watch request held (the watch is down while Jobs change), and one answered 410 Gone, as the API
server answers a resume from a resourceVersion it no longer has. (The local API server's watch
cache still holds every event of its short life, so a real 410 cannot be had on demand; the
stream's reading of a 410 inside a watch is unit-tested, tests/unit/controller/test_job_watch.py.)
Everything else, the lists, the watches and the index, is real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from bentham.controller.api_http import ApiHttp, Lines
from bentham.controller.job_index import JobIndex, StudyKey
from bentham.controller.job_watch import JobWatch
from bentham.controller.metrics import Metrics
from bentham.core.decision import ObservedJob
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID
from tests.support import Cluster

UID = "0000-job-watch"
WAIT_S = 20.0


def job(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A suspended Job: it starts no pod, so only the test changes it."""
    container = {"name": "executor", "image": "example.invalid/never-runs"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def ours(cell: int) -> dict[str, str]:
    return {LABEL_STUDY_UID: UID, LABEL_CELL_INDEX: str(cell), LABEL_ATTEMPT: "1"}


class ResumeFaults:
    """The stream's real requests, but a watch may be held (the watch is down), or answered 410 Gone."""

    def __init__(self, real: ApiHttp) -> None:
        self._real = real
        self.request = real.request  # the lists
        self.open = asyncio.Event()
        self.open.set()
        self.held = asyncio.Event()  # a watch request is waiting for `open`
        self.expire_next = False

    @contextlib.asynccontextmanager
    async def lines(self, path: str, **params: Any) -> AsyncIterator[Lines]:
        self.held.set()
        await self.open.wait()
        if self.expire_next:
            self.expire_next = False
            raise ApiException(status=410, reason="Gone: too old resource version")
        async with self._real.lines(path, **params) as lines:
            yield lines


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield api
    finally:
        api.close()


async def until(probe: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_S / 0.1)):
        if probe():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {WAIT_S}s waiting for {what}")


@pytest.mark.parametrize("expired", [False, True], ids=["resumed", "listed-after-410"])
def test_a_job_deleted_while_the_watch_is_down_does_not_linger_and_a_stranger_is_never_seen(
    api: client.ApiClient, unwatched_namespace: str, expired: bool
) -> None:
    """Resumed, the watch hears the DELETED it missed; after a 410 the list drops the Job instead."""
    namespace = unwatched_namespace
    jobs = client.BatchV1Api(api)
    jobs.create_namespaced_job(namespace, job("listed", ours(0)))
    jobs.create_namespaced_job(namespace, job("deleted-unseen", ours(1)))
    jobs.create_namespaced_job(namespace, job("stranger", {LABEL_CELL_INDEX: "2", LABEL_ATTEMPT: "1"}))
    key: StudyKey = (namespace, UID)
    heard: list[tuple[StudyKey, ObservedJob]] = []
    index = JobIndex(lambda k, sighting: heard.append((k, sighting)))
    metrics = Metrics()

    def names() -> set[str]:
        return {sighting.name for sighting in index.jobs(key)}

    def lists() -> float:
        return metrics.registry.get_sample_value("bentham_job_watch_lists_total") or 0.0

    async def scenario() -> None:
        watch = JobWatch(api, index, [namespace], timeout_s=30, metrics=metrics)
        faults = ResumeFaults(watch._streams[0]._http)
        watch._streams[0]._http = faults  # type: ignore[assignment]  # the same two calls
        watch.start()
        try:
            await asyncio.wait_for(watch.listed.wait(), WAIT_S)
            assert names() == {"listed", "deleted-unseen"}  # the stranger has no uid label: the server never sends it

            jobs.create_namespaced_job(namespace, job("watched", ours(3)))
            await until(lambda: "watched" in names(), "the watch to add a new Job")

            faults.open.clear()  # the watch goes down at its next request
            faults.held.clear()
            watch._streams[0].interrupt()
            await until(faults.held.is_set, "the stream to resume")
            jobs.delete_namespaced_job("deleted-unseen", namespace, propagation_policy="Background")
            jobs.create_namespaced_job(namespace, job("created-unseen", ours(4)))
            assert "deleted-unseen" in names()  # nothing has told the index yet

            faults.expire_next = expired  # its resourceVersion no longer on the server: a list, not a resume
            faults.open.set()
            await until(lambda: names() == {"listed", "watched", "created-unseen"}, "the index to catch up")
            assert lists() == (2 if expired else 1)

            jobs.delete_namespaced_job("watched", namespace, propagation_policy="Background")
            await until(lambda: "watched" not in names(), "the watch, resumed after the list, to see a DELETED")
            assert all(sighting.name != "stranger" for _, sighting in heard)
        finally:
            faults.open.set()
            await watch.stop()
        assert all(task.done() for task in watch._tasks)

    asyncio.run(scenario())
