"""`kubectl study` on the real control plane, found by kubectl itself as a plugin on PATH."""

from __future__ import annotations

from bench.operator_process import OperatorProcess
from tests.shipping import touch_namespace
from tests.support import Cluster, Studies, failing_pod_template, kubectl_study, kwok_stage, study


def line_starting(text: str, prefix: str) -> list[str]:
    return next(line for line in text.splitlines() if line.startswith(prefix)).split()


def test_plugin_watches_a_study_to_completion_then_shows_its_progress_and_cells(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    touch_namespace(cluster, namespace)  # in case the session's operator started just now
    studies = Studies(cluster, namespace)
    # Both surfaces required: the study completes only once every cell has (threshold 0.95 of 4).
    studies.create(
        study("followed", required=("openai-api", "grok"), queries=2, pod_annotations={"sim.bentham.io/duration": "1s"})
    )

    watched = kubectl_study(cluster, "watch", "followed", "-n", namespace, "--interval", "0.5", timeout_s=120)

    assert watched.returncode == 0, watched.stderr
    assert "State:     complete" in watched.stdout.split("Study:")[-1], "the last frame shows the end"
    assert "State:     complete" not in watched.stdout.split("Study:")[1], "the first frame was drawn before the end"

    shown = kubectl_study(cluster, "status", "followed", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "Progress:  [########################] 8/8 completed (100%), 0 failed, 0 running, 0 pending" in shown.stdout
    assert line_starting(shown.stdout, "openai-api") == [
        "openai-api",
        "*",
        "[########################]",
        "100%",
        "4",
        "0",
        "0",
        "0",
        "0",
        "4",
    ]
    assert line_starting(shown.stdout, "grok")[:2] == ["grok", "*"]
    assert line_starting(shown.stdout, "us-nyc")[-6:] == ["4", "0", "0", "0", "0", "4"]
    assert "Conditions: " in shown.stdout and "Complete (" in shown.stdout

    cells = kubectl_study(cluster, "cells", "followed", "-n", namespace, "--surface", "grok", "--location", "uk-lon")
    assert cells.returncode == 0, cells.stderr
    lines = cells.stdout.splitlines()
    assert lines[0].split() == ["INDEX", "CELL", "QUERY", "SURFACE", "LOCATION", "STATE", "ATTEMPTS"]
    assert [line.split() for line in lines[1:3]] == [
        ["3", "q0-grok-uk-lon", "0", "grok", "uk-lon", "completed", "1"],
        ["7", "q1-grok-uk-lon", "1", "grok", "uk-lon", "completed", "1"],
    ]
    assert lines[-1] == "2 of 8 cells"


def test_plugin_shows_why_a_study_failed_and_which_cells_failed(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    touch_namespace(cluster, namespace)  # in case the session's operator started just now
    studies = Studies(cluster, namespace)
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template()):
        studies.create(
            study("doomed", required=("openai-api", "grok"), queries=3, parallelism=2, max_retries=1, threshold=0.9)
        )
        studies.wait_for_state("doomed", "failed", "complete")

    shown = kubectl_study(cluster, "status", "doomed", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "State:     failed" in shown.stdout
    assert "Conditions: " in shown.stdout and "Failed (RequiredSurfaceUnreachable)" in shown.stdout
    grok = line_starting(shown.stdout, "grok")
    assert grok[:2] == ["grok", "*"]
    assert int(grok[-6]) == 0 and int(grok[-5]) >= 1, grok  # DONE 0, FAILED at least one
    assert "x" in grok[2], "the bar shows the failed cells"

    failed = kubectl_study(cluster, "cells", "doomed", "-n", namespace, "--state", "failed")
    assert failed.returncode == 0, failed.stderr
    rows = [line.split() for line in failed.stdout.splitlines()[1:] if line and not line.endswith("cells")]
    assert rows, failed.stdout
    assert {(row[3], row[5], row[6]) for row in rows} == {("grok", "failed", "1")}
    assert failed.stdout.splitlines()[-1] == f"{len(rows)} of 12 cells"

    watched = kubectl_study(cluster, "watch", "doomed", "-n", namespace)
    assert watched.returncode == 2, "watch ends at once on a finished study, and says it did not complete"


def test_plugin_says_when_a_study_does_not_exist(cluster: Cluster, study_crd: Cluster, namespace: str) -> None:
    missing = kubectl_study(cluster, "status", "nowhere", "-n", namespace)

    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: study 'nowhere' not found in namespace '{namespace}'"
