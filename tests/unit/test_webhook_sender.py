"""The webhook notifier against real local HTTP servers: delivery, retries, timeouts, a full queue."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from bentham.controller.webhook_sender import WebhookSender
from bentham.core.decision import Notification
from bentham.core.webhook_policy import allowed_networks

LOOPBACK = allowed_networks("127.0.0.0/8")
"""These tests' webhooks listen on 127.0.0.1, which the operator refuses unless its admin allows it."""


def note(n: int = 0) -> Notification:
    return Notification(event="study.paused", id=f"uid:study.paused:{n}", payload={"state": "paused", "n": n})


class Receiver:
    """A local webhook answering `status` to every POST, recording what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@contextmanager
def receiving(status: int = 200) -> Iterator[Receiver]:
    receiver = Receiver(status)
    thread = threading.Thread(target=receiver.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@contextmanager
def hanging() -> Iterator[str]:
    """A URL whose server accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        listener.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def fast(tries: int, elapsed: float) -> float | None:
    return 0.02 if tries < 3 else None


def test_a_notification_is_posted_as_json_with_its_id_headers() -> None:
    async def scenario(url: str, receiver: Receiver) -> None:
        notifier = WebhookSender(allowed_networks=LOOPBACK)
        notifier.start()
        notifier.enqueue("tenant-acme", {"webhookUrl": url}, [note(1)])
        await until(lambda: notifier.delivered == 1)
        await notifier.stop()

    with receiving() as receiver:
        asyncio.run(scenario(receiver.url, receiver))
    [(headers, body)] = receiver.requests
    assert body == {"id": "uid:study.paused:1", "event": "study.paused", "state": "paused", "n": 1}
    assert headers["Content-Type"] == "application/json" and headers["Idempotency-Key"] == "uid:study.paused:1"
    assert "Authorization" not in headers


def test_the_url_and_auth_header_come_from_the_secret() -> None:
    class Secrets:
        def __init__(self, url: str) -> None:
            self.data = {
                "url": base64.b64encode(url.encode()).decode(),
                "authorization": base64.b64encode(b"Bearer s3cret").decode(),
            }
            self.asked: list[tuple[str, str]] = []

        def read_namespaced_secret(self, name: str, namespace: str, **options: Any) -> Any:
            self.asked.append((name, namespace))
            return SimpleNamespace(data=self.data)

    async def scenario(secrets: Secrets) -> WebhookSender:
        notifier = WebhookSender(secrets, allowed_networks=LOOPBACK)
        notifier.start()
        notifier.enqueue("tenant-acme", {"secretRef": {"name": "hook"}}, [note()])
        await until(lambda: notifier.delivered == 1)
        await notifier.stop()
        return notifier

    with receiving() as receiver:
        secrets = Secrets(receiver.url)
        asyncio.run(scenario(secrets))
    assert secrets.asked == [("hook", "tenant-acme")]
    assert receiver.requests[0][0]["Authorization"] == "Bearer s3cret"


def test_a_500_is_retried_with_backoff_then_given_up_and_enqueue_returns_at_once() -> None:
    async def scenario(url: str) -> WebhookSender:
        notifier = WebhookSender(allowed_networks=LOOPBACK, backoff=fast)
        notifier.start()
        started = time.perf_counter()
        notifier.enqueue("ns", {"webhookUrl": url}, [note()])
        assert time.perf_counter() - started < 0.05
        await until(lambda: notifier.given_up == 1)
        await notifier.stop()
        return notifier

    with receiving(500) as receiver:
        notifier = asyncio.run(scenario(receiver.url))
    assert len(receiver.requests) == 3 and notifier.delivered == 0
    assert {body["id"] for _, body in receiver.requests} == {"uid:study.paused:0"}


def test_a_refusal_is_not_retried() -> None:
    async def scenario(url: str) -> None:
        notifier = WebhookSender(allowed_networks=LOOPBACK, backoff=fast)
        notifier.start()
        notifier.enqueue("ns", {"webhookUrl": url}, [note()])
        await until(lambda: notifier.given_up == 1)
        await notifier.stop()

    with receiving(401) as receiver:
        asyncio.run(scenario(receiver.url))
    assert len(receiver.requests) == 1


def test_a_hanging_webhook_blocks_neither_enqueue_nor_other_studies_webhooks() -> None:
    async def scenario(dead: str, alive: str) -> WebhookSender:
        notifier = WebhookSender(allowed_networks=LOOPBACK, timeout_s=0.3, backoff=fast)
        notifier.start()
        started = time.perf_counter()
        notifier.enqueue("slow", {"webhookUrl": dead}, [note(1), note(2)])
        notifier.enqueue("fast", {"webhookUrl": alive}, [note(3)])
        assert time.perf_counter() - started < 0.05
        await until(lambda: notifier.delivered == 1, timeout=0.25)  # before the dead one even times out
        await until(lambda: notifier.given_up == 2)
        await notifier.stop()
        return notifier

    with hanging() as dead, receiving() as receiver:
        notifier = asyncio.run(scenario(dead, receiver.url))
    assert [body["n"] for _, body in receiver.requests] == [3]
    assert notifier.given_up == 2


def test_a_full_queue_drops_the_oldest_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(url: str) -> WebhookSender:
        notifier = WebhookSender(allowed_networks=LOOPBACK, max_queued=3)
        notifier.enqueue("ns", {"webhookUrl": url}, [note(n) for n in range(5)])  # not started: all queued
        assert notifier.pending == 3 and notifier.dropped == 2
        notifier.start()
        await until(lambda: notifier.delivered == 3)
        await notifier.stop()
        return notifier

    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"), receiving() as receiver:
        asyncio.run(scenario(receiver.url))
    assert [body["n"] for _, body in sorted(receiver.requests, key=lambda r: r[1]["n"])] == [2, 3, 4]
    assert sum("dropped uid:study.paused:" in r.message for r in caplog.records) == 2


def test_enqueue_never_raises_on_a_bad_destination_or_a_missing_secret(caplog: pytest.LogCaptureFixture) -> None:
    class NoSecrets:
        def read_namespaced_secret(self, name: str, namespace: str, **options: Any) -> Any:
            raise RuntimeError("404 Not Found")

    async def scenario() -> WebhookSender:
        notifier = WebhookSender(NoSecrets(), backoff=fast)
        notifier.start()
        notifier.enqueue("ns", {"webhookUrl": "ftp://nope", "secretRef": {"name": "x"}}, [note()])
        notifier.enqueue("ns", "not a mapping", [note()])  # type: ignore[arg-type]
        notifier.enqueue("ns", None, [note()])
        notifier.enqueue("ns", {"secretRef": {"name": "gone"}}, [note()])
        await until(lambda: notifier.given_up == 1)
        await notifier.stop()
        return notifier

    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"):
        notifier = asyncio.run(scenario())
    assert notifier.delivered == 0 and notifier.pending == 0
    assert any("Secret ns/gone" in r.message for r in caplog.records)
