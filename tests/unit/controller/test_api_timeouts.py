"""Every API call the operator makes is bounded: a server that accepts and then says nothing never holds a call."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import urllib3
from kubernetes import client

from bentham.api.status import StudyStatus
from bentham.controller.api_http import ApiHttp
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


NETWORK_ERRORS = (TimeoutError, aiohttp.ClientError)
"""What a call of the studies' client (aiohttp, `api_http`) raises when the network fails it."""


def fails_within(
    seconds: float,
    call: Callable[[], Any],
    errors: type[Exception] | tuple[type[Exception], ...] = urllib3.exceptions.HTTPError,
) -> None:
    """`call` fails with a timeout (or the retries after one) within `seconds`."""
    started = time.monotonic()
    with pytest.raises(errors):
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
    fails_within(5 * BOUND_S, lambda: asyncio.run(call(kube)), NETWORK_ERRORS)


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


@pytest.fixture
def answers_once() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server that answers the first request on each connection, then says nothing on it: connections that die."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve(connection: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = connection.recv(4096)
            if not chunk:
                return
            request += chunk
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection = listener.accept()[0]
            except TimeoutError:
                continue
            accepted.append(connection)
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_timeout_retires_the_studies_idle_connections(answers_once: tuple[str, list[socket.socket]]) -> None:
    host, accepted = answers_once
    http = ApiHttp(bounded_client(host))

    async def scenario() -> None:
        await asyncio.gather(http.request("GET", "/version"), http.request("GET", "/version"))
        assert len(accepted) == 2  # two connections, each answered once, now idle in the pool
        with pytest.raises(NETWORK_ERRORS):
            await http.request("GET", "/version")  # on one of them: silence
        # Not on the other idle one, as dead: on a new connection, which answers.
        assert await http.request("GET", "/version") == b"{}"
        assert len(accepted) == 3
        await http.close()

    asyncio.run(scenario())


def configuration_for(host: str) -> client.Configuration:
    configuration = client.Configuration()
    configuration.host = host
    return configuration
