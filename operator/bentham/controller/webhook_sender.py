"""Sending the decider's notifications to each study's webhook, in the background.

`WebhookSender.enqueue()` never blocks, never does I/O and never raises: it appends to a bounded
queue and returns. When the queue is full the oldest message goes, with a log line: one
waiting to retry if any (it is failing already), else the oldest not yet tried. One background
task takes messages off the queue and POSTs them with urllib in worker threads, a few at a time
and each with a timeout, so a slow or dead webhook delays only its own messages and never a
reconcile. A failed delivery waits its backoff in a timer heap, not in a thread. The wire format
and the retry schedule are the core's (`bentham.core.webhook_format`).

The destination is read at delivery time: `spec.notifications.webhookUrl`, or a Secret in the
study's namespace (`secretRef`: the URL under `urlKey`, the Authorization header's value under
`authHeaderKey`), so a rotated credential is picked up by the next try.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from bentham.api.spec import Notifications
from bentham.core.decision import Notification
from bentham.core.webhook_format import (
    REQUEST_TIMEOUT_SECONDS,
    delivered,
    encode,
    request_headers,
    retry_delay,
    worth_retrying,
)

log = logging.getLogger(__name__)

MAX_QUEUED = 1_000
CONCURRENCY = 4


class SecretReader(Protocol):
    """The part of kubernetes' CoreV1Api the notifier uses."""

    def read_namespaced_secret(self, name: str, namespace: str) -> Any: ...


class DestinationUnavailable(Exception):
    """The webhook's URL cannot be found (a missing Secret or key); worth trying again later."""


@dataclass(frozen=True)
class Destination:
    """Where one study's notifications go."""

    namespace: str
    target: Notifications


@dataclass
class _Delivery:
    destination: Destination
    notification: Notification
    tries: int = 0
    first_try: float | None = None


@dataclass(order=True)
class _Waiting:
    due: float
    sequence: int
    delivery: _Delivery = field(compare=False)


RetryDelay = Callable[[int, float], float | None]


def _default_retry_delay(tries: int, elapsed: float) -> float | None:
    return retry_delay(tries, elapsed=elapsed)


class WebhookSender:
    """A bounded queue of notifications and the background task that delivers them."""

    def __init__(
        self,
        secrets: SecretReader | None = None,
        *,
        max_queued: int = MAX_QUEUED,
        concurrency: int = CONCURRENCY,
        timeout_s: float = REQUEST_TIMEOUT_SECONDS,
        backoff: RetryDelay = _default_retry_delay,
        on_give_up: Callable[[], None] = lambda: None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self._secrets = secrets
        self._may_send = may_send  # the replica's write fence: nothing goes out once it no longer leads
        self._on_give_up = on_give_up
        self._max_queued = max_queued
        self._concurrency = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._ready: deque[_Delivery] = deque()
        self._waiting: list[_Waiting] = []
        self._sequence = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.delivered = 0
        self.given_up = 0
        self.dropped = 0

    def enqueue(
        self, namespace: str, target: Notifications | Mapping[str, Any] | None, notifications: Sequence[Notification]
    ) -> None:
        """Queues `notifications` for the study's webhook; returns at once and never raises."""
        try:
            if target is None or not notifications:
                return
            parsed = target if isinstance(target, Notifications) else Notifications.model_validate(target)
            destination = Destination(namespace, parsed)
            for notification in notifications:
                if self.pending >= self._max_queued:
                    self._drop_oldest()
                self._ready.append(_Delivery(destination, notification))
            self._wake.set()
        except (ValidationError, TypeError, ValueError) as error:
            log.warning(
                "not sending %d notifications for %s: bad spec.notifications: %s", len(notifications), namespace, error
            )
        except Exception:  # never into a reconcile
            log.exception("could not queue notifications for %s", namespace)

    @property
    def pending(self) -> int:
        """Messages queued or waiting to retry (not those being sent right now)."""
        return len(self._ready) + len(self._waiting)

    def _drop_oldest(self) -> None:
        # A message already failing is the least likely to get through: it goes first.
        dropped = heapq.heappop(self._waiting).delivery if self._waiting else self._ready.popleft()
        self.dropped += 1
        log.warning("notification queue full (%d): dropped %s", self._max_queued, dropped.notification.id)

    def start(self) -> None:
        """Starts the background task, in the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        """Stops sending; messages not yet delivered are dropped, with a log line."""
        tasks = [t for t in (self._task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        if self.pending:
            log.warning("notifier stopped with %d notifications undelivered", self.pending)

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            while self._waiting and self._waiting[0].due <= now:
                self._ready.append(heapq.heappop(self._waiting).delivery)
            while self._ready:
                await self._concurrency.acquire()  # at most `concurrency` sends at once
                task = asyncio.create_task(self._send(self._ready.popleft()))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            self._wake.clear()
            timeout = max(0.0, self._waiting[0].due - time.monotonic()) if self._waiting else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _send(self, delivery: _Delivery) -> None:
        try:
            await self._try(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # the task must never die of one message
            log.exception("notification %s: unexpected error", delivery.notification.id)
        finally:
            self._concurrency.release()

    async def _try(self, delivery: _Delivery) -> None:
        notification = delivery.notification
        now = time.monotonic()
        if delivery.first_try is None:
            delivery.first_try = now
        delivery.tries += 1
        status: int | None = None
        problem = ""
        try:
            url, authorization = await asyncio.to_thread(self._resolve, delivery.destination)
            if not self._may_send():
                log.warning("notification %s not sent: this replica no longer leads", notification.id)
                return
            status, problem = await asyncio.to_thread(
                _post, url, encode(notification), request_headers(notification, authorization), self._timeout_s
            )
        except DestinationUnavailable as error:
            problem = str(error)
        if delivered(status):
            self.delivered += 1
            log.debug("notification %s delivered (%s)", notification.id, status)
            return
        delay = self._backoff(delivery.tries, time.monotonic() - delivery.first_try) if worth_retrying(status) else None
        if delay is None:
            self.given_up += 1
            self._on_give_up()
            log.warning(
                "notification %s not delivered after %d tries, giving up: %s",
                notification.id,
                delivery.tries,
                problem or status,
            )
            return
        log.info(
            "notification %s: try %d failed (%s); again in %.1fs",
            notification.id,
            delivery.tries,
            problem or status,
            delay,
        )
        heapq.heappush(self._waiting, _Waiting(time.monotonic() + delay, next(self._sequence), delivery))
        self._wake.set()

    def _resolve(self, destination: Destination) -> tuple[str, str | None]:
        """The URL and Authorization value (runs in a thread: it may read a Secret)."""
        target = destination.target
        if target.webhookUrl is not None:
            return target.webhookUrl, None
        ref = target.secretRef
        if ref is None or self._secrets is None:
            raise DestinationUnavailable("no webhook URL and no way to read its Secret")
        try:
            secret = self._secrets.read_namespaced_secret(ref.name, destination.namespace)
        except Exception as error:
            raise DestinationUnavailable(f"Secret {destination.namespace}/{ref.name}: {error}") from error
        data: Mapping[str, str] = getattr(secret, "data", None) or {}
        url = _decoded(data, ref.urlKey)
        if not url:
            raise DestinationUnavailable(f"Secret {destination.namespace}/{ref.name} has no key {ref.urlKey}")
        return url, _decoded(data, ref.authHeaderKey) if ref.authHeaderKey else None


def _decoded(data: Mapping[str, str], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode().strip()
    except (ValueError, UnicodeDecodeError):
        return None


def _post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> tuple[int | None, str]:
    """POSTs once; the HTTP status (None on a network error or timeout) and what went wrong."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status: int = response.status
            return status, ""
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        return None, f"{type(error).__name__}: {error}"
