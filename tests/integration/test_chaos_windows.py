"""Kills aimed at the riskiest window: after a pass has created its Jobs and before the next status write.

A kill at a random moment seldom lands there. Here the operator freezes itself at the moment
(`BENTHAM_TEST_STOP_AT=jobs-created:<n>`, `controller/stop_points.py`): after the n-th pass that
created Jobs, whose status is either written already or still held back by pacing. The test
waits for the freeze, kills the process with SIGKILL and starts another, over and over. Each
restart must find the Jobs the dead one created and adopt them, never create an attempt again,
and never count one twice.
"""

from __future__ import annotations

import random
from pathlib import Path

from bench.operator_process import OperatorProcess, start_operator
from tests.support import (
    Cluster,
    JobCreations,
    Studies,
    assert_each_attempt_created_once,
    chaos_study,
    first_attempts_in_london_fail,
    kill_hard,
    report,
    wait_until_stopped,
)

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".cluster" / "logs"
KILLS = 12


def test_kills_between_a_job_create_and_the_next_status_write_start_no_attempt_twice(
    cluster: Cluster, unwatched_namespace: str
) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    creations = JobCreations(cluster, namespace)
    log = LOGS / f"operator-{namespace}.log"
    rng = random.Random(20261130)

    def armed(nth: int) -> OperatorProcess:
        env = {"BENTHAM_TEST_STOP_AT": f"jobs-created:{nth}"}
        return start_operator(cluster.kubeconfig, log, "--namespace", namespace, env=env)

    def ended() -> bool:
        return studies.status("chaos-window").get("state") in ("complete", "failed")

    operator = armed(1)
    aimed = 0
    try:
        with first_attempts_in_london_fail(cluster, namespace):
            studies.create(chaos_study("chaos-window"))
            while aimed < KILLS:
                if not wait_until_stopped(operator, 60, unless=ended):
                    break
                kill_hard(operator)  # frozen at the stop point: the kill lands exactly in the window
                aimed += 1
                # The 1st pass with creates: its status is written. The 2nd or 3rd: usually held by pacing.
                operator = armed(rng.randint(1, 3))
            operator.stop()
            operator = start_operator(cluster.kubeconfig, log, "--namespace", namespace)  # unarmed: finish it
            status = studies.wait_for_state("chaos-window", "complete", "failed", timeout_s=300)
    finally:
        operator.stop()
        creations.stop()

    report(f"chaos: {aimed} kills between a Job create and the next status write; duplicates: {creations.duplicates}")
    assert aimed >= 10, f"the study ended after only {aimed} aimed kills; make it longer"
    assert_each_attempt_created_once(studies, "chaos-window", status, creations)
