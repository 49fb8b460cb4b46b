"""Fencing on the real control plane: no write of a replica that has lost the leadership, or of a stale view, wins.

Three layers, each tested here: a status write is conditional on the Study's version it was
decided from (the API server refuses it otherwise); every write of a replica passes its write
fence, which closes by the clock at the renew deadline; and, end to end, a leader frozen past its
Lease and woken after a standby took over writes nothing at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.operator_process import start_operator
from bentham import __version__
from bentham.api.status import Checkpoint, StudyState, StudyStatus
from bentham.controller.kube import FencedApiClient, KubeClient, StudyChanged, StudyRef, event_name
from bentham.controller.leadership import LeadershipLost, WriteFence, elapsed_clock
from bentham.controller.metrics import Metrics
from bentham.controller.webhook_sender import WebhookSender
from bentham.controller.workers import StudyWorker
from bentham.core.checkpoint import CellState, read_records
from bentham.core.jobs import LABEL_ATTEMPT, LABEL_CELL_INDEX, LABEL_STUDY_UID
from tests.support import (
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    JobCreations,
    ResumingWatch,
    Studies,
    assert_each_attempt_created_once,
    eventually,
    first_attempts_in_london_fail,
    report,
    study,
    wait_until_stopped,
)

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".cluster" / "logs"
WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def test_a_status_write_onto_a_version_of_the_study_that_is_no_more_is_refused(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    studies = Studies(study_crd, unwatched_namespace)
    kube = KubeClient(study_crd.api, Metrics())
    created = studies.create(study("versions"))["metadata"]
    ref = StudyRef(unwatched_namespace, "versions", created["uid"])
    first = StudyStatus(state=StudyState.QUEUED, message="first")
    stale = StudyStatus(state=StudyState.QUEUED, message="decided from the version before the first")

    after_first = asyncio.run(kube.replace_status(ref, first, created["resourceVersion"]))
    assert after_first is not None and after_first != created["resourceVersion"]
    with pytest.raises(StudyChanged):
        asyncio.run(kube.replace_status(ref, stale, created["resourceVersion"]))
    assert studies.status("versions")["message"] == "first"

    studies.patch_spec("versions", {"paused": True})  # a user's change is a new version too
    with pytest.raises(StudyChanged):
        asyncio.run(kube.replace_status(ref, stale, after_first))
    fresh = asyncio.run(kube.read_study(ref))
    assert fresh is not None and fresh["status"]["message"] == "first"
    assert asyncio.run(kube.replace_status(ref, stale, fresh["metadata"]["resourceVersion"]))
    assert studies.status("versions")["message"] == stale.message


def test_a_replica_whose_fence_has_closed_sends_no_write_but_still_reads(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    namespace = unwatched_namespace
    studies = Studies(study_crd, namespace)
    created = studies.create(study("fenced"))["metadata"]
    ref = StudyRef(namespace, "fenced", created["uid"])
    fence = WriteFence("replica-a")
    fenced = FencedApiClient(study_crd.api.configuration, fence)
    kube = KubeClient(fenced, Metrics())
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        # labelled as the attempt `delete_jobs` names below, so that a delete that got through would take it
        "metadata": {
            "name": "fenced-job",
            "labels": {LABEL_STUDY_UID: created["uid"], LABEL_CELL_INDEX: "0", LABEL_ATTEMPT: "1"},
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    status = StudyStatus(state=StudyState.QUEUED, message="written by a replica that no longer leads")

    assert not fence.is_open(), "closed until the Lease is first won"
    fence.open_until(elapsed_clock() + 60)
    assert asyncio.run(kube.create_job(namespace, job)) is None, "created: no refusal"
    fence.close()  # lost the Lease
    with pytest.raises(LeadershipLost):
        asyncio.run(kube.replace_status(ref, status, created["resourceVersion"]))
    with pytest.raises(LeadershipLost):
        asyncio.run(kube.delete_jobs(namespace, created["uid"], [(0, 1)]))
    with pytest.raises(LeadershipLost):
        asyncio.run(kube.post_event(ref, event_name("fenced"), "Normal", "Fenced", "never posted"))
    assert asyncio.run(kube.read_study(ref)) is not None, "reads go on"
    fenced.close()

    assert "message" not in studies.status("fenced")
    assert studies.batch.read_namespaced_job("fenced-job", namespace).metadata.deletion_timestamp is None
    events = client.CoreV1Api(study_crd.api).list_namespaced_event(namespace).items
    assert not [event for event in events if event.reason == "Fenced"]


class StatusHistory(ResumingWatch):
    """Every status of one Study the API server announces, in order, from a watch started before it exists."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.statuses: list[dict[str, Any]] = []
        api = client.CustomObjectsApi(cluster.api)
        selector = f"metadata.name={name}"
        super().__init__(api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, field_selector=selector)

    def saw(self, type_: str, item: Any) -> None:
        status = item.get("status")
        if status and (not self.statuses or self.statuses[-1] != status):
            self.statuses.append(status)

    def shrinkages(self) -> list[str]:
        """Each step where a recorded outcome vanished, the sequence went back or a cell lost attempts."""
        found: list[str] = []
        previous: dict[str, Any] | None = None
        for status in self.statuses:
            if previous is not None:
                found += _shrunk(previous, status)
            previous = status
        return found


def _recorded(status: dict[str, Any]) -> list[tuple[CellState, int]]:
    if not status.get("checkpoint"):
        return []
    decoded = read_records(Checkpoint.model_validate(status["checkpoint"]))
    return [(record.state, record.attempts) for record in decoded or []]


def _shrunk(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    found = []
    sequence = (before.get("checkpoint") or {}).get("sequence", -1), (after.get("checkpoint") or {}).get("sequence", -1)
    if sequence[1] < sequence[0]:
        found.append(f"checkpoint sequence went back {sequence[0]} -> {sequence[1]}")
    done = [(s.get("progress") or {}).get("completedCells", 0) for s in (before, after)]
    if done[1] < done[0]:
        found.append(f"completedCells went back {done[0]} -> {done[1]}")
    old, new = _recorded(before), _recorded(after)
    for index, ((state, attempts), (state_now, attempts_now)) in enumerate(zip(old, new, strict=False)):
        if attempts_now < attempts or (state is CellState.COMPLETED and state_now is not CellState.COMPLETED):
            found.append(f"cell {index}: {state.name}/{attempts} -> {state_now.name}/{attempts_now}")
    return found


def audited_writes(cluster: Cluster, namespace: str, user_agent: str, since: datetime) -> Iterator[dict[str, Any]]:
    """The API server's audit events of successful writes in `namespace` from `user_agent` received since `since`."""
    audit = cluster.kubeconfig.parent / "logs" / "audit.log"
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        received = datetime.fromisoformat(event["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if (
            (event.get("objectRef") or {}).get("namespace") == namespace
            and event.get("userAgent") == user_agent
            and event["verb"] in WRITES
            and 200 <= (event.get("responseStatus") or {}).get("code", 0) < 300
            and received >= since
        ):
            yield event


def test_a_leader_frozen_past_its_lease_writes_nothing_once_woken_beside_the_new_leader(
    cluster: Cluster, unwatched_namespace: str
) -> None:
    if not (cluster.kubeconfig.parent / "logs" / "audit.log").exists():
        pytest.skip("tells the replicas' writes apart by the local control plane's audit log")
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    leases = client.CoordinationV1Api(cluster.api)
    args = ("--namespace", namespace, "--leader-elect", "--lease-namespace", namespace)
    queries, locations = 40, ("us-nyc", "uk-lon")
    total = queries * len(locations)

    # The old leader freezes itself just before its sixth status write: woken, that write is its next act.
    old = start_operator(
        cluster.kubeconfig,
        LOGS / f"operator-{namespace}-old.log",
        *args,
        env={"BENTHAM_TEST_STOP_AT": "status-write:6"},
    )
    replicas = [old]
    history = StatusHistory(cluster, namespace, "two-leaders")
    creations = JobCreations(cluster, namespace)
    try:
        holder = eventually(
            lambda: leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity, what="a leader"
        )
        assert holder.endswith(f"-{old.pid}")
        new = start_operator(cluster.kubeconfig, LOGS / f"operator-{namespace}-new.log", *args)
        replicas.append(new)
        with first_attempts_in_london_fail(cluster, namespace):
            studies.create(
                study(
                    "two-leaders",
                    locations=locations,
                    queries=queries,
                    parallelism=4,
                    pod_annotations={"sim.bentham.io/duration": "1s"},
                )
            )
            assert wait_until_stopped(old, 60, unless=lambda: False)
            frozen = (studies.status("two-leaders").get("progress") or {}).get("completedCells", 0)
            new_holder = eventually(
                lambda: (
                    (h := leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity) != holder
                    and h
                ),
                timeout_s=45,
                what="the standby to take the lease",
            )
            assert new_holder.endswith(f"-{new.pid}")
            eventually(
                lambda: (studies.status("two-leaders").get("progress") or {}).get("completedCells", 0) > frozen,
                what="the new leader to record progress",
            )
            progress = studies.status("two-leaders")["progress"]["completedCells"]
            assert progress < total, "the study must still be running when the old leader wakes"
            woken = datetime.now(UTC)
            os.kill(old.pid, signal.SIGCONT)
            old.process.wait(timeout=60)  # it finds it lost the Lease, and exits for its Deployment to restart it
            status = studies.wait_for_state("two-leaders", "complete", "failed", timeout_s=240)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.stop()
        history.stop()
        creations.stop()

    old_agent = f"bentham-operator/{__version__} ({holder})"
    before = list(audited_writes(cluster, namespace, old_agent, datetime.min.replace(tzinfo=UTC)))
    after = list(audited_writes(cluster, namespace, old_agent, woken))
    report(
        f"fencing: the old leader was frozen at {frozen} cells, woken at {progress}; "
        f"its writes before: {len(before)}, after waking: {len(after)}; statuses watched: {len(history.statuses)}"
    )
    assert [e for e in before if (e["objectRef"].get("subresource") == "status")], "the audit log shows its writes"
    assert after == [], [(e["verb"], e["objectRef"], e["responseStatus"]) for e in after]
    assert old.process.returncode == 1, old.log_tail()
    assert "write refused" in old.log.read_text(), "woken, it tried to write, and its fence refused"
    assert history.shrinkages() == []
    assert_each_attempt_created_once(studies, "two-leaders", status, creations, total=total, locations=len(locations))


def test_a_worker_whose_write_was_refused_decides_again_from_the_study_as_it_is(
    study_crd: Cluster, unwatched_namespace: str
) -> None:
    """No operator runs here: one StudyWorker, in this process, against the real API server."""
    namespace = unwatched_namespace
    studies = Studies(study_crd, namespace)
    body = study("raced")
    body["spec"]["paused"] = True  # its passes start no Jobs
    created = studies.create(body)
    worker = StudyWorker(
        (namespace, created["metadata"]["uid"]),
        KubeClient(study_crd.api, Metrics()),
        WebhookSender(),
        jobs=lambda key: (),
        metrics=Metrics(),
        batch_window_s=0.0,
        status_interval_s=5.0,
    )
    worker.see(created)
    asyncio.run(worker.reconcile())
    first = studies.status("raced")
    assert first["state"] == "paused"

    studies.patch_spec("raced", {"cancel": {"reason": "no longer needed"}})
    worker.see(studies.get("raced"))  # the watch delivers the user's change ...
    # ... and before the worker acts on it, another writer records more: a later checkpoint.
    racer = {**first, "checkpoint": {**first["checkpoint"], "sequence": first["checkpoint"]["sequence"] + 40}}
    client.CustomObjectsApi(study_crd.api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "raced", {"status": racer}
    )

    asyncio.run(worker.reconcile())  # refused: the Study moved since the version it decided from
    assert studies.status("raced") == racer, "the refused write changed nothing"
    asyncio.run(worker.reconcile())  # decided again from what is there now
    final = studies.status("raced")

    assert final["state"] == "cancelled"
    assert final["checkpoint"]["sequence"] == racer["checkpoint"]["sequence"], "decided from the racer's checkpoint"
