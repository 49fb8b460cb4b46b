"""The reference executor end to end: a real Study on the local control plane, its cells answered for real.

kwok's pods run no process, so the test plays the kubelet for each cell's pod: it takes the pod the
Job controller made from the operator's Job, resolves the container's environment from it as the
kubelet would (values, the pod's labels through the downward API, the namespace's real Secret),
runs `python -m bentham_executor` with exactly that environment, and ends the pod with the
executor's exit code and the termination message it wrote. Everything else is real: the operator
creates the Jobs, the SDKs talk HTTP to local services through per-location proxies, and the
operator judges each result, retries, and sums the reported costs into `status.cost`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from kubernetes import client

from bench.operator_process import OperatorProcess
from tests.executor.contract import container_env, run_executor_command
from tests.executor.dialects import ANTHROPIC, OPENAI, Dialect
from tests.executor.servers import RecordingProxy, WireService
from tests.support import Cluster, Studies, eventually, study

KEYS_SECRET = "answer-engine-keys"
LOCATIONS = ("us-nyc", "uk-lon")


@dataclass(frozen=True)
class Ran:
    """One attempt the executor ran: its pod, exit code and termination message."""

    pod: str
    surface: str
    location: str
    exit_code: int
    message: dict[str, Any]


def api_study(services: dict[str, WireService], evidence: Path, proxy_map: Path) -> dict[str, Any]:
    """2 queries x (openai-api, anthropic-api) x (us-nyc, uk-lon), run by the reference executor."""
    dialects: dict[str, Dialect] = {OPENAI.surface: OPENAI, ANTHROPIC.surface: ANTHROPIC}
    body = study("api-study", required=tuple(dialects), locations=LOCATIONS, queries=2, max_retries=3)
    executor = body["spec"]["executor"]
    executor["image"] = "bentham-executor:dev"
    # kwok keeps each pod running; the test ends it with what the executor reported.
    executor["podAnnotations"] = {"sim.bentham.io/duration": "1h"}
    executor["env"] = [
        *(
            {"name": d.key_variable, "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": d.surface}}}
            for d in dialects.values()
        ),
        *({"name": d.base_url_variable, "value": d.base_url(services[d.surface].url)} for d in dialects.values()),
        {"name": "BENTHAM_EVIDENCE_DIR", "value": str(evidence)},
        {"name": "BENTHAM_PROXY_MAP_FILE", "value": str(proxy_map)},
    ]
    body["spec"]["manifest"]["evidenceLevel"] = "full"
    return body


def secrets_of(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, dict[str, str]]:
    secret = core.read_namespaced_secret(name, namespace)
    return {name: {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}}


def run_executor(pod: client.V1Pod, namespace: str, secrets: dict[str, dict[str, str]], scratch: Path) -> Ran:
    """Runs the executor with the pod's environment, as the kubelet would start its container."""
    env = container_env(client.ApiClient().sanitize_for_serialization(pod), namespace=namespace, secrets=secrets)
    exited = run_executor_command(env, scratch / f"{pod.metadata.name}.termination-log")
    labels = pod.metadata.labels
    assert exited.message, f"{pod.metadata.name} wrote no result: {exited.stderr[-2000:]}"
    return Ran(
        pod.metadata.name, labels["bentham.io/surface"], labels["bentham.io/location"], exited.code, exited.message
    )


def end_pod(core: client.CoreV1Api, namespace: str, ran: Ran) -> None:
    """Ends the pod as a kubelet would after the container exited: phase, exit code and termination message."""
    succeeded = ran.exit_code == 0
    core.patch_namespaced_pod_status(
        ran.pod,
        namespace,
        {
            "status": {
                "phase": "Succeeded" if succeeded else "Failed",
                "containerStatuses": [
                    {
                        "name": "executor",
                        "image": "bentham-executor:dev",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": ran.exit_code,
                                "reason": "Completed" if succeeded else "Error",
                                "message": json.dumps(ran.message),
                            }
                        },
                    }
                ],
            }
        },
    )


def test_an_api_study_completes_with_the_reference_executor_its_cost_summed_and_evidence_stored(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(cluster.api)
    studies = Studies(cluster, namespace)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    through: list[tuple[str, str, str]] = []
    with ExitStack() as stack:
        services = {d.surface: stack.enter_context(WireService().running()) for d in (OPENAI, ANTHROPIC)}
        # The first OpenAI call fails with a 500: that cell is retried by the operator and passes.
        services[OPENAI.surface].script(OPENAI.failing(500, "overloaded"), OPENAI.good("Try Brooks."))
        services[ANTHROPIC.surface].script(ANTHROPIC.good("Hoka and ASICS make good ones."))
        proxies = {loc: stack.enter_context(RecordingProxy(loc, through).running()).url for loc in LOCATIONS}
        proxy_map = tmp_path / "proxies.yaml"
        proxy_map.write_text(yaml.safe_dump(proxies))
        keys = {OPENAI.surface: "sk-openai-test", ANTHROPIC.surface: "sk-ant-test"}
        core.create_namespaced_secret(
            namespace, {"metadata": {"name": KEYS_SECRET}, "stringData": keys, "type": "Opaque"}
        )
        created = studies.create(api_study(services, evidence, proxy_map))
        uid = created["metadata"]["uid"]
        secrets = secrets_of(core, namespace, KEYS_SECRET)

        ran: list[Ran] = []
        done: set[str] = set()

        def finished() -> dict[str, Any] | None:
            status = studies.status("api-study")
            if status.get("state") in ("complete", "failed"):
                return status
            pods = core.list_namespaced_pod(namespace, label_selector=f"bentham.io/study-uid={uid}").items
            waiting = [p for p in pods if p.status.phase == "Running" and p.metadata.name not in done]
            with ThreadPoolExecutor(max_workers=4) as pool:
                for result in pool.map(lambda p: run_executor(p, namespace, secrets, tmp_path), waiting):
                    end_pod(core, namespace, result)
                    done.add(result.pod)
                    ran.append(result)
            return None

        status = eventually(finished, timeout_s=240, what="the API study to end")

    assert status["state"] == "complete", status.get("message")
    assert len(ran) == 9, [(r.pod, r.message.get("error")) for r in ran]
    failures = [r for r in ran if not r.message["success"]]
    assert [(r.surface, r.message["error"]["code"], r.exit_code) for r in failures] == [
        ("openai-api", "SERVICE_UNAVAILABLE", 0)
    ]

    # status.cost is exactly the sum of what the attempts reported, each counted once, in micro-dollars.
    def total(runs: list[Ran]) -> int:
        micros = sum((Decimal(repr(r.message["costUsd"])).scaleb(6) for r in runs), Decimal(0))
        assert micros == int(micros), "each reported cost is whole micro-dollars"
        return int(micros)

    surfaces = (OPENAI.surface, ANTHROPIC.surface)
    assert status["cost"] == {
        "totalMicroUsd": total(ran),
        "bySurfaceMicroUsd": {s: total([r for r in ran if r.surface == s]) for s in surfaces},
        "totalUsd": total(ran) / 1_000_000,
        "bySurface": {s: total([r for r in ran if r.surface == s]) / 1_000_000 for s in surfaces},
        "attempts": 9,
    }
    # Every passing attempt's evidence is on the volume, under the study's uid, and matches its digest.
    for result in ran:
        if result.message["success"]:
            [reference] = result.message["evidence"]
            path = Path(unquote(urlsplit(reference["url"]).path))
            assert path.is_relative_to(evidence / "api-study" / uid)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == reference["sha256"]
    # Each call went out through its cell's location.
    assert sorted(name for name, _, _ in through) == sorted(r.location for r in ran)
    assert {r.location for r in ran} == set(LOCATIONS)
    # The keys came from the Secret, per surface.
    for dialect in (OPENAI, ANTHROPIC):
        sent = [" ".join(req.headers.values()) for req in services[dialect.surface].received]
        assert sent and all(keys[dialect.surface] in headers for headers in sent)
