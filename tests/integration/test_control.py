"""Pause, resume, cancel, deadlines with escalation, and notifications, on the real control plane.

Time is compressed: deadlines a minute or two away, and kwok pods that run for seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from bench.operator_process import OperatorProcess
from tests.support import (
    Cluster,
    Studies,
    WebhookReceiver,
    eventually,
    kubectl_study,
    kwok_stage,
    study,
    succeeding_pod_template,
)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


LATER_PASSES = 3
"""Checkpoints written after an announcement before a repeat of it would have shown (each is a later pass)."""


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def job_names(studies: Studies, name: str) -> set[str]:
    return {job.metadata.name for job in studies.jobs(name)}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions", []) if c["type"] == kind)


def stray_attempt_job(study_name: str, study_uid: str) -> client.V1Job:
    """A Job labelled as an attempt of the study that the operator never started: a cancelled study removes it."""
    labels = {
        "bentham.io/study": study_name,
        "bentham.io/study-uid": study_uid,
        "bentham.io/cell-index": "0",
        "bentham.io/attempt": "99",
    }
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=f"{study_name}-stray", labels=labels),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="executor", image="example.invalid/executor:1")],
                )
            ),
        ),
    )


def test_pausing_stops_new_jobs_and_resuming_finishes_the_study(
    cluster: Cluster, operator: OperatorProcess, namespace: str, webhook: WebhookReceiver
) -> None:
    studies = Studies(cluster, namespace)
    body = study("pausable", queries=6, parallelism=2, pod_annotations={"sim.bentham.io/duration": "2s"})
    body["spec"]["notifications"] = {"webhookUrl": webhook.url}
    studies.create(body)
    eventually(lambda: len(job_names(studies, "pausable")) == 2, what="the first Jobs")

    studies.patch_spec("pausable", {"paused": True})
    status = studies.wait_for_state("pausable", "paused", timeout_s=30)
    assert condition(status, "Paused")["status"] == "True"
    seen = job_names(studies, "pausable")

    def settled_while_paused() -> dict[str, Any] | None:
        """The paused status once the cells in flight have ended and are recorded, every Job seen meanwhile kept."""
        seen.update(job_names(studies, "pausable"))
        status = studies.status("pausable")
        return status if status["state"] == "paused" and status["progress"]["executingCells"] == 0 else None

    # The status is written before a pass creates Jobs, so one with no cell executing is a pass that started none.
    paused = eventually(settled_while_paused, what="the cells in flight at the pause to end")
    assert len(seen) <= 4, seen  # at most the ones in flight when the pause was seen, and none after
    assert paused["progress"]["executingCells"] == 0

    studies.patch_spec("pausable", {"paused": False})
    final = studies.wait_for_state("pausable", "complete", timeout_s=120)
    assert final["progress"]["completedCells"] == 12
    # Notifications go out after the status write that records them, so the last may trail it.
    expected = {"study.created", "study.started", "study.paused", "study.resumed", "study.completed"}
    eventually(
        lambda: expected <= {body["event"] for body in webhook.received},
        timeout_s=15,
        what=f"the notifications {sorted(expected)}",
    )


def test_study_paused_as_its_last_cell_ended_completes_on_resume(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    studies.create(
        study(
            "last-cell",
            queries=1,
            locations=("us-nyc", "uk-lon"),
            parallelism=2,
            pod_annotations={"sim.bentham.io/duration": "3s"},
        )
    )
    eventually(lambda: len(job_names(studies, "last-cell")) == 2, what="both Jobs")
    studies.patch_spec("last-cell", {"paused": True})
    studies.wait_for_state("last-cell", "paused", timeout_s=30)

    recorded = eventually(
        lambda: (s := studies.status("last-cell"))["progress"]["completedCells"] == 2 and s,
        what="both cells to end while paused",
    )
    assert recorded["state"] == "paused"

    studies.patch_spec("last-cell", {"paused": False})
    assert studies.wait_for_state("last-cell", "complete", timeout_s=30)["progress"]["summary"] == "2/2"


def test_cancel_leaves_no_job_behind_and_keeps_the_record(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    studies.create(study("doomed", queries=4, parallelism=3, pod_annotations={"sim.bentham.io/duration": "3s"}))
    eventually(lambda: len(job_names(studies, "doomed")) == 3, what="the Jobs in flight")

    studies.patch_spec("doomed", {"cancel": {"reason": "the client withdrew the brief"}})
    status = studies.wait_for_state("doomed", "cancelled", timeout_s=30)

    eventually(lambda: not studies.jobs("doomed"), what="every Job to go")
    assert "the client withdrew the brief" in status["message"]
    assert status["progress"]["totalCells"] == 8
    assert status["checkpoint"]["cells"]
    # A Job claiming to be an attempt of the study wakes it; removing it shows a pass after the cancel has run.
    # Passes of a study run one at a time, so every earlier one has finished whatever it was going to do.
    uid = studies.get("doomed")["metadata"]["uid"]
    studies.batch.create_namespaced_job(namespace, stray_attempt_job("doomed", uid))
    eventually(lambda: not studies.jobs("doomed"), what="the operator to remove a Job that turned up after the cancel")
    assert studies.status("doomed")["state"] == "cancelled"
    assert not studies.jobs("doomed")


def test_study_that_cannot_make_its_deadline_is_flagged_notified_once_and_gets_more_parallelism(
    cluster: Cluster, operator: OperatorProcess, namespace: str, webhook: WebhookReceiver
) -> None:
    studies = Studies(cluster, namespace)
    body = study(
        "behind", queries=20, parallelism=2, pod_annotations={"sim.bentham.io/duration": "4s"}, deadline=in_seconds(240)
    )
    body["spec"]["executor"]["maxParallelism"] = 6
    body["spec"]["notifications"] = {"webhookUrl": webhook.url}
    studies.create(body)

    flagged = eventually(
        lambda: (s := studies.status("behind")).get("deadline", {}).get("atRisk") and s,
        timeout_s=60,
        what="the study to be flagged at risk",
    )
    assert condition(flagged, "AtRisk")["status"] == "True"
    raised = eventually(
        lambda: (s := studies.status("behind")).get("parallelism", 2) > 2 and s,
        timeout_s=60,
        what="parallelism to rise",
    )
    assert raised["parallelism"] <= 6
    deadline_status = raised["deadline"]
    for field in ("timeRemainingSeconds", "requiredRate", "bottleneckSurface"):
        assert deadline_status.get(field) is not None, deadline_status
    eventually(lambda: webhook.events("study.at_risk"), timeout_s=15, what="the at-risk notification")
    # Later reconciles must not announce the same stretch again: let a few of them record cells first.
    announced_at = studies.status("behind")["checkpoint"]["sequence"]
    eventually(
        lambda: studies.status("behind")["checkpoint"]["sequence"] >= announced_at + LATER_PASSES,
        what=f"{LATER_PASSES} more checkpoints after the at-risk notification",
    )
    assert len(webhook.events("study.at_risk")) == 1, webhook.events("study.at_risk")
    studies.patch_spec("behind", {"cancel": {"reason": "test over"}})


def test_study_with_no_progress_near_its_deadline_is_flagged(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    studies.create(
        study(
            "stuck",
            queries=2,
            parallelism=2,
            pod_annotations={"sim.bentham.io/duration": "600s"},
            deadline=in_seconds(300),
        )
    )

    status = eventually(
        lambda: (s := studies.status("stuck")).get("deadline", {}).get("atRisk") and s,
        timeout_s=60,
        what="a study without progress to be flagged",
    )
    assert status["progress"]["completedCells"] == 0
    studies.patch_spec("stuck", {"cancel": {"reason": "test over"}})


def test_at_the_deadline_with_thresholds_met_open_cells_are_skipped_and_those_in_flight_finish(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    # One slot: the two required cells run first, then grok's first cell runs for 20 s; the
    # deadline falls while it runs, with openai-api done and grok's second cell never started.
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, succeeding_pod_template(), delay="20s"):
        studies.create(
            study(
                "optional-slow",
                required=("openai-api",),
                optional=("grok",),
                queries=2,
                locations=("us-nyc",),
                parallelism=1,
                deadline=in_seconds(12),
            )
        )
        at_deadline = eventually(
            lambda: (s := studies.status("optional-slow")).get("progress", {}).get("skippedCells") and s,
            timeout_s=60,
            what="the open optional cell to be skipped at the deadline",
        )
        progress = at_deadline["progress"]
        assert at_deadline["state"] == "executing", at_deadline.get("message")  # the cell in flight finishes
        assert (progress["completedCells"], progress["executingCells"], progress["skippedCells"]) == (2, 1, 1)
        assert progress["pendingCells"] == 0 and progress["bySurface"]["grok"]["skipped"] == 1
        listed = cluster.kubectl("get", "studies", "-n", namespace, "optional-slow").stdout
        assert "SKIPPED" in listed.splitlines()[0] and listed.splitlines()[1].split()[4] == "1", listed

        status = studies.wait_for_state("optional-slow", "complete", "failed", timeout_s=90)
    assert status["state"] == "complete", status.get("message")
    progress = status["progress"]
    assert (progress["completedCells"], progress["skippedCells"], progress["totalCells"]) == (3, 1, 4)
    assert "1 cells skipped" in status["message"]
    shown = kubectl_study(cluster, "status", "optional-slow", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "3/4 completed (75%), 0 failed, 0 running, 0 pending, 1 skipped" in shown.stdout
    grok = next(line for line in shown.stdout.splitlines() if line.startswith("grok"))
    assert grok.split()[-3:] == ["0", "1", "2"]  # pending, skipped, total
    cells = kubectl_study(cluster, "cells", "optional-slow", "-n", namespace, "--state", "skipped")
    assert cells.returncode == 0 and "q1-grok-us-nyc" in cells.stdout, cells.stdout + cells.stderr


@pytest.mark.parametrize(
    ("policy", "outcome"), [({}, "human_intervention_required"), ({"onDeadlineMissed": "Fail"}, "failed")]
)
def test_at_the_deadline_a_study_short_of_its_thresholds_follows_its_policy(
    cluster: Cluster, operator: OperatorProcess, namespace: str, policy: dict[str, str], outcome: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study(
        "late", queries=2, parallelism=2, pod_annotations={"sim.bentham.io/duration": "600s"}, deadline=in_seconds(20)
    )
    body["spec"]["policy"] = policy
    studies.create(body)

    status = studies.wait_for_state("late", "human_intervention_required", "failed", "complete", timeout_s=90)

    assert status["state"] == outcome
    assert "deadline" in status["message"].lower()


def test_a_webhook_that_fails_or_hangs_does_not_slow_the_study(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    failing, hanging = WebhookReceiver("fail"), WebhookReceiver("hang")
    try:
        started = time.monotonic()
        for name, receiver in (("to-failing", failing), ("to-hanging", hanging)):
            body = study(name, queries=3, parallelism=6)
            body["spec"]["notifications"] = {"webhookUrl": receiver.url}
            studies.create(body)
        for name in ("to-failing", "to-hanging"):
            studies.wait_for_state(name, "complete", timeout_s=60)
        elapsed = time.monotonic() - started

        retried = eventually(
            lambda: (
                any(len([b for b in failing.received if b["id"] == first["id"]]) > 1 for first in failing.received)
                or None
            ),
            timeout_s=20,
            what="a failed delivery to be retried",
        )
    finally:
        failing.close()
        hanging.close()
    assert retried
    assert hanging.received, "the hanging webhook was called"
    assert elapsed < 30, f"two 6-cell studies took {elapsed:.0f}s beside a bad webhook"
