"""The webhook notifier against real local HTTP servers: delivery, retries, timeouts, a full queue."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from bentham.controller.webhook_sender import WebhookSender
from bentham.core.decision import Notification
from bentham.core.webhook_policy import allowed_networks
from tests.support import DrippingWebhook, eventually

LOOPBACK = allowed_networks("127.0.0.0/8")
"""These tests' webhooks listen on 127.0.0.1, which the operator refuses unless its admin allows it."""


def note(n: int = 0) -> Notification:
    return Notification(event="study.paused", id=f"uid:study.paused:{n}", payload={"state": "paused", "n": n})


class Receiver:
    """A local webhook answering `status` (with a Location, if given) to every POST, recording what it got."""

    def __init__(self, status: int = 200, location: str | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), json.loads(body)))
                self.send_response(receiver.status)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                self.do_POST()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"http{'s' if tls else ''}://127.0.0.1:{self.port}/hook"


@contextmanager
def receiving(status: int = 200, location: str | None = None, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    receiver = Receiver(status, location, tls)
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


def settle(notifier: WebhookSender, target: dict[str, Any], namespace: str = "ns") -> WebhookSender:
    """Runs `notifier` until the one notification sent to `target` is delivered or given up; returns it."""

    async def scenario() -> None:
        notifier.start()
        notifier.enqueue(namespace, target, [note()])
        await until(lambda: notifier.delivered + notifier.given_up == 1)
        await notifier.stop()

    asyncio.run(scenario())
    return notifier


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


class Secrets:
    """The Secret `hook` of the study's namespace, holding `url` and `authorization` (both changeable)."""

    def __init__(self, url: str = "", authorization: str = "Bearer s3cret") -> None:
        self.url, self.authorization = url, authorization
        self.asked: list[tuple[str, str]] = []

    def read_namespaced_secret(self, name: str, namespace: str, **options: Any) -> Any:
        self.asked.append((name, namespace))
        data = {"url": self.url, "authorization": self.authorization}
        return SimpleNamespace(data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()})


def test_the_url_and_auth_header_come_from_the_secret() -> None:
    with receiving() as receiver:
        secrets = Secrets(receiver.url)
        notifier = settle(
            WebhookSender(secrets, allowed_networks=LOOPBACK), {"secretRef": {"name": "hook"}}, "tenant-acme"
        )
    assert notifier.delivered == 1 and secrets.asked == [("hook", "tenant-acme")]
    assert receiver.requests[0][0]["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme must be http or https, not 'gopher'"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ],
)
def test_a_url_from_a_secret_is_held_to_the_same_rules_and_given_up_at_once(
    url: str, rule: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"):
        notifier = settle(WebhookSender(Secrets(url), backoff=fast), {"secretRef": {"name": "hook"}}, "tenant-acme")
    assert notifier.given_up == 1
    assert "refused, not sent: Secret tenant-acme/hook key url: " in caplog.text and rule in caplog.text


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


def test_a_redirect_is_not_followed_and_counts_as_a_failed_try(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="bentham.controller.webhook_sender"),
        receiving() as elsewhere,
        receiving(302, location=elsewhere.url) as redirecting,
    ):
        notifier = settle(WebhookSender(allowed_networks=LOOPBACK, backoff=fast), {"webhookUrl": redirecting.url})
    assert notifier.given_up == 1 and len(redirecting.requests) == 3  # retried on the usual schedule
    assert elsewhere.requests == []
    assert "HTTP 302: a redirect, not followed" in caplog.text


def test_a_slow_drip_answer_is_cut_at_the_deadline_of_the_whole_try(caplog: pytest.LogCaptureFixture) -> None:
    deadline_s = 1.0

    async def scenario(url: str) -> None:
        notifier = WebhookSender(allowed_networks=LOOPBACK, timeout_s=deadline_s, backoff=lambda tries, elapsed: None)
        notifier.start()
        notifier.enqueue("ns", {"webhookUrl": url}, [note()])
        await until(lambda: notifier.given_up == 1, timeout=10)
        await notifier.stop()

    # A byte every 0.1 s: each read gets data well within any per-read timeout; the whole answer takes 13 s.
    server = DrippingWebhook(byte_every_s=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"):
            asyncio.run(scenario(server.url))
        lifetimes = eventually(server.lifetimes, timeout_s=5, what="the connection to be closed by the sender")
    finally:
        server.close()
    assert len(lifetimes) == 1 and deadline_s - 0.1 <= lifetimes[0] < deadline_s + 1.0, lifetimes
    assert "within the 1s deadline of a try" in caplog.text


def test_a_loopback_url_is_refused_by_default_and_sent_when_the_admin_allows_127_0_0_0_8(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def scenario(url: str, allowed: str) -> WebhookSender:
        notifier = WebhookSender(allowed_networks=allowed_networks(allowed), backoff=fast)
        return settle(notifier, {"webhookUrl": url}, "tenant-acme")

    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"), receiving() as receiver:
        refused = scenario(receiver.url, "")
        assert receiver.requests == [] and refused.given_up == 1  # given up at once: no retry helps
        assert (
            "notification uid:study.paused:0 refused, not sent: spec.notifications.webhookUrl (namespace tenant-acme):"
            " 127.0.0.1 is a loopback address; webhooks may reach only public addresses unless the operator's"
            " BENTHAM_WEBHOOK_ALLOWED_CIDRS" in caplog.text
        )
        allowed = scenario(receiver.url, "127.0.0.0/8")
    assert allowed.delivered == 1 and len(receiver.requests) == 1


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "localhost"])
def test_decimal_octal_and_short_forms_of_loopback_are_refused_after_resolving(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"), receiving() as receiver:
        notifier = settle(WebhookSender(backoff=fast), {"webhookUrl": f"http://{host}:{receiver.port}/hook"})
    assert receiver.requests == [] and notifier.given_up == 1
    assert f"{host} resolves to " in caplog.text and "a loopback address" in caplog.text


class CountingResolver:
    """A resolver that answers from a table and counts its lookups; the second answer of a name may differ."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        self.lookups.append(host)
        addresses = self.answers[host][min(len(self.lookups), len(self.answers[host])) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port)) for a in addresses]


def test_the_post_goes_to_the_address_checked_with_the_urls_name_as_host_and_one_lookup() -> None:
    # The second lookup would answer a link-local address (DNS rebinding): there must be none.
    resolver = CountingResolver({"hook.test": [["127.0.0.1"], ["169.254.169.254"]]})

    with receiving() as receiver:
        url = f"http://hook.test:{receiver.port}/hook?team=7"
        notifier = settle(WebhookSender(allowed_networks=LOOPBACK, resolve=resolver), {"webhookUrl": url})
    assert notifier.delivered == 1
    [(headers, _)] = receiver.requests
    assert headers["Host"] == f"hook.test:{receiver.port}"
    assert resolver.lookups == ["hook.test"]


def test_a_name_with_any_address_not_allowed_is_refused_though_another_is_public(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = CountingResolver({"hook.test": [["93.184.216.34", "10.0.0.7"]]})

    with caplog.at_level(logging.WARNING, logger="bentham.controller.webhook_sender"):
        notifier = settle(WebhookSender(resolve=resolver, backoff=fast), {"webhookUrl": "https://hook.test/x"})
    assert notifier.given_up == 1 and resolver.lookups == ["hook.test"]
    assert "hook.test resolves to 10.0.0.7, a private address" in caplog.text


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate (and its key) for the name hook.test only."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hook.test"),
            *("-addext", "subjectAltName=DNS:hook.test", "-keyout", key, "-out", cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_to_the_checked_address_sends_the_urls_name_as_sni_and_verifies_its_certificate(
    certificate: tuple[str, str],
) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_side.sni_callback = lambda _socket, name, _context: names.append(name)
    trusting = ssl.create_default_context(cafile=cert)
    resolver = CountingResolver({"hook.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})

    def scenario(url: str) -> WebhookSender:
        notifier = WebhookSender(
            allowed_networks=LOOPBACK, resolve=resolver, tls=trusting, backoff=lambda tries, elapsed: None
        )
        return settle(notifier, {"webhookUrl": url})

    with receiving(tls=server_side) as receiver:
        good = scenario(f"https://hook.test:{receiver.port}/hook")
        wrong_name = scenario(f"https://other.test:{receiver.port}/hook")
    assert good.delivered == 1 and names[0] == "hook.test"
    assert wrong_name.given_up == 1 and len(receiver.requests) == 1  # the certificate is not other.test's


def test_the_authorization_value_never_appears_in_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    token = "s3cret-" + uuid.uuid4().hex

    secrets = Secrets()

    def deliver(url: str, authorization: str, allowed: str = "127.0.0.0/8") -> WebhookSender:
        secrets.url, secrets.authorization = url, authorization
        notifier = WebhookSender(secrets, allowed_networks=allowed_networks(allowed), timeout_s=0.5, backoff=fast)
        return settle(notifier, {"secretRef": {"name": "hook"}}, "tenant-acme")

    caplog.set_level(logging.DEBUG)  # every logger, every level
    bearer = f"Bearer {token}"
    with (
        receiving() as ok,
        receiving(500) as failing,
        receiving(401) as refusing,
        receiving(302, location=ok.url) as redirecting,
        hanging() as hung,
    ):
        outcomes = [
            deliver(ok.url, bearer).delivered,
            deliver(failing.url, bearer).given_up,
            deliver(refusing.url, bearer).given_up,
            deliver(redirecting.url, bearer).given_up,
            deliver(hung, bearer).given_up,
            deliver(ok.url, bearer, allowed="").given_up,  # refused address
            deliver("file:///etc/passwd", bearer).given_up,  # refused scheme
            deliver(ok.url, f"{bearer}\r\nX-Injected: {token}").given_up,  # refused header
        ]
    assert outcomes == [1] * 8
    assert ok.requests[0][0]["Authorization"] == bearer and "X-Injected" not in ok.requests[-1][0]
    assert caplog.records, "the failures were logged"
    assert token not in caplog.text
    assert all(token not in str(record.args) for record in caplog.records)
    assert "Secret tenant-acme/hook key url: a webhook URL's scheme must be http or https, not 'file'" in caplog.text
    assert "Secret tenant-acme/hook key authorization: the Authorization value must be printable ASCII" in caplog.text


def test_one_namespaces_hanging_webhook_does_not_hold_back_another_namespaces_notifications() -> None:
    async def scenario(dead: str, alive: str) -> tuple[WebhookSender, float]:
        notifier = WebhookSender(
            allowed_networks=LOOPBACK,
            concurrency=4,
            concurrency_per_namespace=2,
            timeout_s=1.0,
            backoff=lambda tries, elapsed: None,
        )
        notifier.enqueue("slow", {"webhookUrl": dead}, [note(n) for n in range(40)])  # first in the queue
        notifier.enqueue("fast", {"webhookUrl": alive}, [note(100 + n) for n in range(6)])
        started = time.monotonic()
        notifier.start()
        await until(lambda: notifier.delivered == 6, timeout=10)
        fast_done = time.monotonic() - started
        assert notifier.given_up == 0  # not one of the slow namespace's tries has even timed out yet
        await notifier.stop()
        return notifier, fast_done

    with hanging() as dead, receiving() as receiver:
        _, fast_done = asyncio.run(scenario(dead, receiver.url))
    assert len(receiver.requests) == 6 and fast_done < 1.0


def test_each_namespace_has_a_bounded_share_of_the_queue_and_a_full_queue_drops_from_the_fullest() -> None:
    async def scenario() -> WebhookSender:
        notifier = WebhookSender(max_queued=12, max_queued_per_namespace=10)  # not started: all stay queued
        notifier.enqueue("flood", {"webhookUrl": "https://hooks.example/a"}, [note(n) for n in range(300)])
        assert notifier.pending_in("flood") == 10 and notifier.dropped == 290
        notifier.enqueue("quiet", {"webhookUrl": "https://hooks.example/b"}, [note(n) for n in range(5)])
        return notifier

    notifier = asyncio.run(scenario())
    assert notifier.pending_in("quiet") == 5 and notifier.pending_in("flood") == 7 and notifier.pending == 12
