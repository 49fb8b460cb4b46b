"""Helpers for tests on the real control plane."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, watch

from bench.kube import Api, scratch_namespace
from bench.operator_process import OperatorProcess
from bentham.api.status import Checkpoint
from bentham.core.checkpoint import CellState, read_records

T = TypeVar("T")

REPORT: list[str] = []
"""Lines for the end of the test run's output (see conftest's pytest_terminal_summary)."""


def report(line: str) -> None:
    """Shows `line` at the end of the run, whatever pytest's capture settings."""
    REPORT.append(line)
    print(line)


@dataclass(frozen=True)
class Cluster:
    """A running cluster and the ways tests talk to it."""

    kubeconfig: Path
    api: client.ApiClient

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Runs the kubectl on PATH against this cluster."""
        result = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    @cached_property
    def plain_api(self) -> Api:
        """The benchmarks' plain HTTP client for this cluster, so tests and bench share helpers such as namespaces."""
        return Api(self.kubeconfig, user_agent="bentham-tests")


def namespace_for_test(cluster: Cluster, prefix: str, test_name: str = "") -> AbstractContextManager[str]:
    """A scratch namespace `prefix-<test name>-<random>`, labelled as a test's, deleted (not awaited) afterwards.

    The prefix decides who serves it: the session's operator watches `t-*`, and ignores `u-*`.
    """
    slug = "".join(c if c.isalnum() else "-" for c in test_name.lower())[:40].strip("-")
    name = "-".join(part for part in (prefix, slug, uuid.uuid4().hex[:6]) if part)
    return scratch_namespace(cluster.plain_api, name, {"bentham.io/test": "true"})


def eventually(probe: Callable[[], T | None], timeout_s: float = 60, what: str = "condition") -> T:
    """Polls until `probe` returns something truthy, and returns it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


GROUP, VERSION, PLURAL = "bentham.io", "v1alpha1", "studies"

GOOD_RESULT: dict[str, Any] = {
    "success": True,
    "responseLength": 800,
    "isActualContent": True,
    "responseTimeMs": 650,
    "evidence": [{"url": "s3://evidence/cell.json", "sha256": "a" * 64}],
}


def study(
    name: str,
    *,
    required: tuple[str, ...] = ("openai-api",),
    optional: tuple[str, ...] = (),
    locations: tuple[str, ...] = ("us-nyc", "uk-lon"),
    queries: int = 2,
    parallelism: int = 4,
    result: Mapping[str, Any] | None = None,
    pod_annotations: Mapping[str, str] | None = None,
    max_retries: int = 3,
    threshold: float = 0.95,
    **manifest: Any,
) -> dict[str, Any]:
    """A Study whose cells' pods all end with `result` (a good one by default) unless a Stage says otherwise."""
    annotations = {"sim.bentham.io/termination-message": json.dumps(result or GOOD_RESULT)}
    annotations.update(pod_annotations or {})
    criteria: dict[str, Any] = {
        "requiredSurfaces": {"surfaceIds": list(required), "coverageThreshold": threshold},
        "maxRetriesPerCell": max_retries,
    }
    if optional:
        criteria["optionalSurfaces"] = {"surfaceIds": list(optional)}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Study",
        "metadata": {"name": name},
        "spec": {
            "tenantId": "acme",
            "executor": {
                "image": "example.invalid/executor:1",
                "parallelism": parallelism,
                "podAnnotations": annotations,
            },
            "manifest": {
                "name": name,
                "queries": [{"text": f"Question number {i}?"} for i in range(queries)],
                "surfaces": [{"id": s} for s in (*required, *optional)],
                "locations": [{"id": loc} for loc in locations],
                "completionCriteria": criteria,
                **manifest,
            },
        },
    }


class Studies:
    """The Studies of one namespace."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.api = client.CustomObjectsApi(cluster.api)
        self.batch = client.BatchV1Api(cluster.api)

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, dict(body)))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": dict(spec)})

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait_for_state(self, name: str, *states: str, timeout_s: float = 120) -> dict[str, Any]:
        """Waits until the study is in one of `states`; returns its status."""

        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("state") in states else None

        try:
            return eventually(reached, timeout_s, what=f"study {name} to reach {'/'.join(states)}")
        except AssertionError as error:
            raise AssertionError(f"{error}; status now: {json.dumps(self.status(name))[:3000]}") from None

    def jobs(self, name: str) -> list[client.V1Job]:
        return list(self.batch.list_namespaced_job(self.namespace, label_selector=f"bentham.io/study={name}").items)


@contextmanager
def kwok_stage(
    cluster: Cluster, namespace: str, selector_labels: Mapping[str, str], status_template: str, delay: str | None = None
) -> Iterator[str]:
    """A kwok Stage, for Running pods of `namespace` with these labels, while the block runs."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    spec: dict[str, Any] = {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchLabels": dict(selector_labels),
            "matchExpressions": [
                {"key": ".metadata.namespace", "operator": "In", "values": [namespace]},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
            ],
        },
        "weight": 1,
        "next": {"statusTemplate": status_template},
    }
    if delay:
        spec["delay"] = {"durationMilliseconds": int(float(delay.rstrip("s")) * 1000)}
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "Stage",
                "metadata": {"name": name},
                "spec": spec,
            }
        ),
    )
    time.sleep(1)  # kwok learns of Stages through a watch
    try:
        yield name
    finally:
        cluster.kubectl("delete", "stage", name, "--wait=false", check=False)


def succeeding_pod_template(message: Mapping[str, Any] | None = None) -> str:
    """A Stage statusTemplate that ends the executor container as succeeded, with `message` (a good result)."""
    return _ended_pod_template("Succeeded", 0, "Completed", json.dumps(json.dumps(message or GOOD_RESULT)))


def failing_pod_template(message: Mapping[str, Any] | None = None, exit_code: int = 1) -> str:
    """A Stage statusTemplate that ends the executor container as failed, with `message`."""
    text = json.dumps(json.dumps(message)) if message is not None else '""'
    return _ended_pod_template("Failed", exit_code, "Error", text)


def _ended_pod_template(phase: str, exit_code: int, reason: str, quoted_message: str) -> str:
    return (
        f"phase: {phase}\n"
        "containerStatuses:\n"
        "{{ range .spec.containers }}\n"
        "- name: {{ .name | Quote }}\n"
        "  image: {{ .image | Quote }}\n"
        "  ready: false\n"
        "  restartCount: 0\n"
        "  state:\n"
        "    terminated:\n"
        f"      exitCode: {exit_code}\n"
        f"      reason: {reason}\n"
        f"      message: {quoted_message}\n"
        "{{ end }}\n"
    )


LOOPBACK_WEBHOOKS = {"BENTHAM_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8"}
"""The operator's environment for tests whose webhooks listen on 127.0.0.1: loopback is refused by default."""


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records notifications; it can answer 500, hang, or redirect (302)."""

    def __init__(self, mode: str = "ok", redirect_to: str | None = None) -> None:
        self.mode = "redirect" if redirect_to else mode
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                receiver.received.append(body)
                receiver.headers.append(dict(self.headers))
                if receiver.mode == "hang":
                    receiver._release.wait(60)
                self.send_response({"fail": 500, "redirect": 302}.get(receiver.mode, 204))
                if redirect_to:
                    self.send_header("Location", redirect_to)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/bentham"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self, event: str) -> list[dict[str, Any]]:
        return [body for body in self.received if body.get("event") == event]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


class DrippingWebhook:
    """A server on 127.0.0.1 that reads each request, then drips a 200 answer one byte per `byte_every_s`.

    Each connection's life is recorded as (accepted, closed by the client) monotonic times: a sender
    with a deadline per read, not per try, would hold on until the whole answer (over 100 bytes) had come.
    """

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: " + b"x" * 100 + b"\r\n\r\n"

    def __init__(self, byte_every_s: float) -> None:
        self.byte_every_s = byte_every_s
        self.connections: list[tuple[float, float | None]] = []
        self._done = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/hooks/drip"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append((time.monotonic(), None))
            threading.Thread(target=self._drip, args=(connection, len(self.connections) - 1), daemon=True).start()

    def _drip(self, connection: socket.socket, index: int) -> None:
        with connection:
            connection.recv(65_536)
            for byte in self.ANSWER:
                readable, _, _ = select.select([connection], [], [], self.byte_every_s)
                try:
                    closed = readable and not connection.recv(1)
                    if not closed:
                        connection.sendall(bytes([byte]))
                except OSError:
                    closed = True  # the client reset it
                if closed:
                    self.connections[index] = (self.connections[index][0], time.monotonic())
                    return
                if self._done.is_set():
                    return

    def lifetimes(self) -> list[float]:
        """How long each connection the client closed lasted, in seconds."""
        return [closed - accepted for accepted, closed in self.connections if closed is not None]

    def close(self) -> None:
        self._done.set()
        self._listener.close()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value, the root included."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


VENV_BIN = Path(sys.executable).parent


def kubectl_study(cluster: Cluster, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """`kubectl study ...`: kubectl runs the `kubectl-study` that the package installs into the venv."""
    assert (VENV_BIN / "kubectl-study").exists(), "pip install -e . installs the plugin's entry point"
    environment = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["kubectl", "study", *args, f"--kubeconfig={cluster.kubeconfig}"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout_s,
    )


def kill_hard(operator: OperatorProcess) -> None:
    """SIGKILL: no goodbye, so whatever the operator held back (a status not yet written) is lost with it."""
    operator.process.send_signal(signal.SIGKILL)
    operator.process.wait(timeout=10)


def kill_repeatedly(
    operator: OperatorProcess,
    restart: Callable[[], OperatorProcess],
    *,
    done: Callable[[], bool],
    most: int,
    seed: int,
    pause: tuple[float, float],
) -> tuple[OperatorProcess, int]:
    """Kills the operator at seeded random moments and starts it again, `most` times or until `done()`.

    Returns the operator now running and how many times it was killed.
    """
    rng = random.Random(seed)
    kills = 0
    try:
        while kills < most and not done():
            time.sleep(rng.uniform(*pause))
            kill_hard(operator)
            kills += 1
            operator = restart()
    except BaseException:
        operator.stop()  # the caller still holds an earlier one, already killed
        raise
    return operator, kills


class ResumingWatch:
    """A watch of one list from now on, in a thread, that resumes where it was after any error.

    A restarted API server's watch cache starts after our place (410): then everything listed
    counts as seen, and only an object created and deleted while no watch ran could be missed.
    """

    def __init__(self, list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._list = functools.partial(list_call, *args, **kwargs)
        self._stop = threading.Event()
        self._resource_version = self._relist()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def saw(self, type_: str, item: Any) -> None:
        """One event: ADDED, MODIFIED or DELETED (or LISTED, after a 410)."""

    def _watch(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            try:
                for event in stream.stream(self._list, resource_version=self._resource_version, timeout_seconds=5):
                    item = event["object"]
                    self._resource_version = _resource_version(item)
                    self.saw(event["type"], item)
                    if self._stop.is_set():
                        break
            except client.ApiException as error:
                if error.status == 410:
                    with contextlib.suppress(Exception):
                        self._resource_version = self._relist(report=True)
                time.sleep(0.5)
            except Exception:  # the API server itself may be down in these tests: resume from where we were
                time.sleep(0.5)
            finally:
                stream.stop()

    def _relist(self, report: bool = False) -> str:
        listed = self._list()
        items = listed["items"] if isinstance(listed, dict) else listed.items
        if report:
            for item in items:
                self.saw("LISTED", item)
        return str(
            listed["metadata"]["resourceVersion"] if isinstance(listed, dict) else listed.metadata.resource_version
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _resource_version(item: Any) -> str:
    return str(item["metadata"]["resourceVersion"] if isinstance(item, dict) else item.metadata.resource_version)


class JobCreations(ResumingWatch):
    """Every Job created in a namespace from now on: by name and by (study uid, cell, attempt), with each Job UID.

    A name, or an attempt, seen with two UIDs was created twice.
    """

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.uids: dict[str, set[str]] = defaultdict(set)
        self.by_attempt: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        super().__init__(client.BatchV1Api(cluster.api).list_namespaced_job, namespace)

    def saw(self, type_: str, item: Any) -> None:
        if type_ not in ("ADDED", "LISTED"):
            return
        labels = item.metadata.labels or {}
        self.uids[item.metadata.name].add(item.metadata.uid)
        attempt = (
            labels.get("bentham.io/study-uid", ""),
            labels.get("bentham.io/cell-index", ""),
            labels.get("bentham.io/attempt", ""),
        )
        self.by_attempt[attempt].add(item.metadata.uid)

    @property
    def duplicates(self) -> int:
        """Job names created more than once, and attempts started as more than one Job, counted once each."""
        by_name = sum(len(uids) - 1 for uids in self.uids.values())
        by_attempt = sum(len(uids) - 1 for uids in self.by_attempt.values())
        return max(by_name, by_attempt)

    def created_twice(self) -> dict[str, set[str]]:
        """What was created twice, for an assertion's message."""
        twice = {name: uids for name, uids in self.uids.items() if len(uids) > 1}
        twice.update({"/".join(key): uids for key, uids in self.by_attempt.items() if len(uids) > 1})
        return twice


FIRST_ATTEMPT_IN_LONDON = {"bentham.io/attempt": "1", "bentham.io/location": "uk-lon"}
RETRYABLE_FAILURE = {"success": False, "error": {"code": "TIMEOUT", "message": "slow proxy", "retryable": True}}


def first_attempts_in_london_fail(cluster: Cluster, namespace: str) -> AbstractContextManager[str]:
    """While the block runs, every first attempt in uk-lon fails as retryable; every other attempt passes."""
    return kwok_stage(cluster, namespace, FIRST_ATTEMPT_IN_LONDON, failing_pod_template(RETRYABLE_FAILURE))


CHAOS_SURFACES, CHAOS_LOCATIONS, CHAOS_QUERIES = (
    ("openai-api", "anthropic-api", "perplexity-api"),
    ("us-nyc", "uk-lon"),
    40,
)
CHAOS_CELLS = len(CHAOS_SURFACES) * len(CHAOS_LOCATIONS) * CHAOS_QUERIES


def chaos_study(name: str) -> dict[str, Any]:
    """The chaos tests' study: 240 cells of 1.5 s pods, 12 at a time (360 attempts if London's first ones fail)."""
    return study(
        name,
        required=CHAOS_SURFACES,
        locations=CHAOS_LOCATIONS,
        queries=CHAOS_QUERIES,
        parallelism=12,
        pod_annotations={"sim.bentham.io/duration": "1500ms"},
    )


def recorded_attempts(studies: Studies, name: str) -> list[tuple[CellState, int]]:
    """Each cell's state and attempts, as the study's checkpoint records them."""
    decoded = read_records(Checkpoint.model_validate(studies.status(name)["checkpoint"]))
    assert decoded is not None
    return [(record.state, record.attempts) for record in decoded]


def london_retried_once(total: int, locations: int) -> list[tuple[CellState, int]]:
    """What `first_attempts_in_london_fail` makes of a study whose last location is uk-lon: every cell completed."""
    return [(CellState.COMPLETED, 2 if index % locations == locations - 1 else 1) for index in range(total)]


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (`T`: stopped), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return None


def wait_until_stopped(operator: OperatorProcess, timeout_s: float, *, unless: Callable[[], bool]) -> bool:
    """Waits until the operator has stopped itself at its armed stop point (True), or `unless()` comes first (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process_state(operator.pid) == "T":
            return True
        if operator.process.poll() is not None:
            raise AssertionError(f"the operator exited with {operator.process.returncode}:\n{operator.log_tail()}")
        if unless():
            return False
        time.sleep(0.05)
    raise AssertionError(f"the operator did not reach its stop point within {timeout_s}s:\n{operator.log_tail()}")


def assert_each_attempt_created_once(
    studies: Studies,
    name: str,
    status: Mapping[str, Any],
    creations: JobCreations,
    *,
    total: int = CHAOS_CELLS,
    locations: int = len(CHAOS_LOCATIONS),
) -> None:
    """The study completed, London's first attempts retried once, and each attempt's Job was created exactly once."""
    assert creations.duplicates == 0, creations.created_twice()
    assert status["state"] == "complete", status.get("message")
    expected = london_retried_once(total, locations)
    assert recorded_attempts(studies, name) == expected, "exactly the attempts kwok asked for"
    assert len(creations.uids) == sum(attempts for _, attempts in expected), "each attempt's Job once, none missing"
    assert status["progress"]["completedCells"] == total
