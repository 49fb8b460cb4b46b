"""Every API call the operator makes is bounded: a server that accepts and then says nothing never holds a call."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client

from bentham.api.status import StudyStatus
from bentham.controller.kube import BoundedApiClient, KubeClient, StudyRef
from bentham.controller.leadership import LeaderElector, LeaseSettings
from bentham.controller.metrics import Metrics

BOUND_S = 0.5


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts every connection and never answers: a half-open API server."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def bounded_client(host: str) -> BoundedApiClient:
    configuration = client.Configuration()
    configuration.host = host
    return BoundedApiClient(configuration, connect_timeout_s=BOUND_S, read_timeout_s=BOUND_S)


def fails_within(seconds: float, call: Callable[[], Any]) -> None:
    """`call` fails with a timeout (or the retries after one) within `seconds`."""
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        call()
    assert time.monotonic() - started < seconds


STUDY = StudyRef("ns", "study", "uid-1")
JOB = {"metadata": {"name": "j", "labels": {}}, "spec": {"template": {"spec": {"containers": []}}}}


@pytest.mark.parametrize(
    "call",
    [
        lambda kube: kube.create_job("ns", JOB),
        lambda kube: kube.delete_jobs("ns", "uid-1", [(0, 1)]),
        lambda kube: kube.finished_pods("ns", "uid-1", ["j"]),
        lambda kube: kube.replace_status(STUDY, StudyStatus(), "1"),
        lambda kube: kube.current_uid(STUDY),
        lambda kube: kube.api_version(),
    ],
    ids=["create_job", "delete_jobs", "finished_pods", "replace_status", "current_uid", "api_version"],
)
def test_every_call_of_the_kube_client_times_out_against_a_silent_server(
    silent_server: str, call: Callable[[KubeClient], Any]
) -> None:
    kube = KubeClient(bounded_client(silent_server), Metrics())
    fails_within(5 * BOUND_S, lambda: asyncio.run(call(kube)))


def test_an_event_that_times_out_is_reported_unposted_not_raised(silent_server: str) -> None:
    kube = KubeClient(bounded_client(silent_server), Metrics())
    started = time.monotonic()
    assert asyncio.run(kube.post_event(STUDY, "study.1", "Normal", "Reason", "message")) is False
    assert time.monotonic() - started < 5 * BOUND_S


def test_the_lease_calls_time_out_against_a_silent_server(silent_server: str) -> None:
    settings = LeaseSettings(namespace="ns", request_timeout_s=BOUND_S)
    elector = LeaderElector(client.ApiClient(configuration_for(silent_server)), "me", settings)
    fails_within(5 * BOUND_S, elector.try_acquire_or_renew)
    started = time.monotonic()
    elector.release()  # logs, never raises: the process is leaving anyway
    assert time.monotonic() - started < 5 * BOUND_S


def test_the_notifiers_secret_read_times_out_against_a_silent_server(silent_server: str) -> None:
    # The notifier reads Secrets through a CoreV1Api of the operator's client (handlers.start).
    secrets = client.CoreV1Api(bounded_client(silent_server))
    fails_within(5 * BOUND_S, lambda: secrets.read_namespaced_secret("hook", "ns"))


def test_a_timeout_drops_the_idle_pooled_connections(silent_server: str) -> None:
    api = bounded_client(silent_server)
    cleared: list[bool] = []
    original = api.rest_client.pool_manager.clear

    def clear() -> None:
        cleared.append(True)
        original()

    api.rest_client.pool_manager.clear = clear
    fails_within(5 * BOUND_S, lambda: client.VersionApi(api).get_code())
    assert cleared == [True]


def configuration_for(host: str) -> client.Configuration:
    configuration = client.Configuration()
    configuration.host = host
    return configuration
