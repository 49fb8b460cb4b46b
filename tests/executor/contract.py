"""The environment an attempt's container gets, derived from the operator's own Job template (core/jobs.py).

`container_env` resolves a pod template's `env` as the kubelet would for the sources the executor
uses: literal values, `fieldRef` to the pod's labels and namespace (the downward API) and
`secretKeyRef`. The executor's tests run on exactly the variables the operator's Jobs carry.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bentham.api.spec import StudySpec
from bentham.core.cells import cell_at
from bentham.core.jobs import build_job

_LABEL = re.compile(r"metadata\.labels\['([^']+)'\]")


def container_env(
    pod: Mapping[str, Any], *, namespace: str, secrets: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, str]:
    """The executor container's environment, from a pod (or pod template) and the namespace's Secrets."""
    container = pod["spec"]["containers"][0]
    labels = pod["metadata"].get("labels", {})
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            label = _LABEL.fullmatch(path)
            if label:
                env[entry["name"]] = labels.get(label.group(1), "")
            elif path == "metadata.namespace":
                env[entry["name"]] = namespace
            else:
                raise ValueError(f"fieldRef {path} is not resolved by this test helper")
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[entry["name"]] = (secrets or {})[ref["name"]][ref["key"]]
        else:
            raise ValueError(f"env {entry['name']}: only value, fieldRef and secretKeyRef are resolved here")
    return env


def attempt_env(
    spec: Mapping[str, Any],
    *,
    study_name: str = "shoes",
    study_uid: str = "2f1c6a4e-0000-4000-8000-000000000001",
    cell_index: int = 0,
    attempt: int = 1,
    secrets: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """The environment of the operator's Job for one attempt of one cell of a Study with this spec."""
    validated = StudySpec.model_validate(spec)
    job = build_job(
        study_name=study_name,
        namespace="tenant",
        study_uid=study_uid,
        spec=validated,
        cell=cell_at(validated.manifest, cell_index),
        attempt=attempt,
    )
    return container_env(job["spec"]["template"], namespace="tenant", secrets=secrets)


@dataclass(frozen=True)
class Exited:
    """How `bentham-executor` ended: its exit code, its termination message (parsed; {} if none), its logs."""

    code: int
    message: dict[str, Any]
    stdout: str
    stderr: str


def run_executor_command(env: Mapping[str, str], termination_log: Path) -> Exited:
    """`python -m bentham_executor` as a container runs it: only `env` (and PATH), its message to `termination_log`."""
    completed = subprocess.run(
        [sys.executable, "-m", "bentham_executor"],
        env={"PATH": os.environ["PATH"], **env, "BENTHAM_TERMINATION_LOG": str(termination_log)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=termination_log.parent,
    )
    message = json.loads(termination_log.read_text()) if termination_log.exists() else {}
    return Exited(completed.returncode, message, completed.stdout, completed.stderr)
