"""Sending the decider's notifications to each study's webhook, in the background, fairly between namespaces.

`WebhookSender.enqueue()` never blocks, never does I/O and never raises: it appends to the queue
of the study's namespace and returns. Each namespace has a bounded share: at most
`max_queued_per_namespace` messages waiting and `concurrency_per_namespace` being sent at once, and
free sending slots go round the namespaces in turn, so one tenant's slow or flooded endpoint
delays only its own notifications. When a namespace's queue, or the whole queue, is full, the
oldest message of that namespace (of the fullest namespace) goes, with a log line: one waiting to
retry if any (it is failing already), else the oldest not yet tried. A failed delivery waits its
backoff in a timer heap, not in a task. The wire format and the retry schedule are the core's
(`bentham.core.webhook_format`); which URLs and addresses may be reached is too
(`bentham.core.webhook_policy`); one POST is `bentham.controller.webhook_client.post`.

The destination is read at delivery time: `spec.notifications.webhookUrl`, or a Secret in the
study's namespace (`secretRef`: the URL under `urlKey`, the Authorization header's value under
`authHeaderKey`), so a rotated credential is picked up by the next try. A destination the policy
refuses (not http(s), an address that is not public and not allowed by the admin, a header value
with a line break) is given up at once, with a log line naming the field or Secret and the rule.
No log line carries a header value, a URL's path or its query: they may hold credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import ssl
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from bentham.api.spec import Notifications
from bentham.controller.webhook_client import Answer, Resolver, SystemResolver, post
from bentham.core.decision import Notification
from bentham.core.webhook_format import (
    REQUEST_TIMEOUT_SECONDS,
    delivered,
    encode,
    request_headers,
    retry_delay,
    worth_retrying,
)
from bentham.core.webhook_policy import IPNetwork, WebhookRefused, header_problem, webhook_url

log = logging.getLogger(__name__)

MAX_QUEUED = 1_000
MAX_QUEUED_PER_NAMESPACE = 250
CONCURRENCY = 32  # sends are coroutines, not threads: a hung one costs a socket until its deadline
CONCURRENCY_PER_NAMESPACE = 4
DNS_THREADS = 8
REDACTED = "[redacted]"


class SecretReader(Protocol):
    """The part of kubernetes' CoreV1Api the notifier uses."""

    def read_namespaced_secret(self, name: str, namespace: str, **options: Any) -> Any: ...


class DestinationUnavailable(Exception):
    """The webhook's URL cannot be found (a missing Secret or key); worth trying again later."""


@dataclass(frozen=True)
class Destination:
    """Where one study's notifications go."""

    namespace: str
    target: Notifications


@dataclass(frozen=True)
class _Target:
    """A destination read for one try: the URL, where it came from, and the Authorization value."""

    url: str
    source: str
    authorization: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be logged: the Authorization value, and its credential without the scheme."""
        if not self.authorization:
            return ()
        credential = self.authorization.partition(" ")[2].strip()
        return (self.authorization, credential) if len(credential) >= 4 else (self.authorization,)


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


@dataclass
class _Lane:
    """One namespace's share: its messages ready to send, those waiting to retry, and how many are being sent."""

    ready: deque[_Delivery] = field(default_factory=deque)
    waiting: list[_Waiting] = field(default_factory=list)
    sending: int = 0

    @property
    def pending(self) -> int:
        return len(self.ready) + len(self.waiting)

    def drop_oldest(self) -> _Delivery:
        # A message already failing is the least likely to get through: it goes first.
        return heapq.heappop(self.waiting).delivery if self.waiting else self.ready.popleft()


RetryDelay = Callable[[int, float], float | None]


def _default_retry_delay(tries: int, elapsed: float) -> float | None:
    return retry_delay(tries, elapsed=elapsed)


class WebhookSender:
    """Per-namespace bounded queues of notifications and the background task that delivers them."""

    def __init__(
        self,
        secrets: SecretReader | None = None,
        *,
        allowed_networks: Sequence[IPNetwork] = (),
        max_queued: int = MAX_QUEUED,
        max_queued_per_namespace: int = MAX_QUEUED_PER_NAMESPACE,
        concurrency: int = CONCURRENCY,
        concurrency_per_namespace: int = CONCURRENCY_PER_NAMESPACE,
        timeout_s: float = REQUEST_TIMEOUT_SECONDS,
        backoff: RetryDelay = _default_retry_delay,
        on_give_up: Callable[[], None] = lambda: None,
        resolve: Resolver | None = None,
        tls: ssl.SSLContext | None = None,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self._secrets = secrets
        self._allowed = tuple(allowed_networks)
        self._may_send = may_send  # the replica's write fence: nothing goes out once it no longer leads
        self._on_give_up = on_give_up
        self._max_queued = max_queued
        self._max_queued_per_namespace = max_queued_per_namespace
        self._concurrency = concurrency
        self._concurrency_per_namespace = concurrency_per_namespace
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._system_resolver: SystemResolver | None = None
        if resolve is None:
            resolve = self._system_resolver = SystemResolver(DNS_THREADS)
        self._resolve = resolve
        self._tls = tls
        self._lanes: dict[str, _Lane] = {}  # in turn order: the namespace served last goes to the back
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
            lane = self._lanes.setdefault(namespace, _Lane())
            for notification in notifications:
                if lane.pending >= self._max_queued_per_namespace:
                    self._drop_oldest(namespace, f"namespace {namespace}'s share ({self._max_queued_per_namespace})")
                elif self.pending >= self._max_queued:
                    fullest = max(self._lanes, key=lambda name: self._lanes[name].pending)
                    self._drop_oldest(fullest, f"the queue ({self._max_queued})")
                lane.ready.append(_Delivery(destination, notification))
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
        return sum(lane.pending for lane in self._lanes.values())

    def pending_in(self, namespace: str) -> int:
        """Messages of one namespace queued or waiting to retry."""
        lane = self._lanes.get(namespace)
        return lane.pending if lane else 0

    def _drop_oldest(self, namespace: str, full: str) -> None:
        dropped = self._lanes[namespace].drop_oldest()
        self.dropped += 1
        log.warning("notification queue full: %s; dropped %s", full, dropped.notification.id)

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
        if self._system_resolver is not None:
            self._system_resolver.close()
        if self.pending:
            log.warning("notifier stopped with %d notifications undelivered", self.pending)

    async def _run(self) -> None:
        while True:
            self._ready_those_due(time.monotonic())
            self._start_sends()
            self._forget_idle_lanes()
            self._wake.clear()
            due = [lane.waiting[0].due for lane in self._lanes.values() if lane.waiting]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    def _ready_those_due(self, now: float) -> None:
        for lane in self._lanes.values():
            while lane.waiting and lane.waiting[0].due <= now:
                lane.ready.append(heapq.heappop(lane.waiting).delivery)

    def _start_sends(self) -> None:
        """Fills free sending slots, one message per namespace in turn, each namespace within its share."""
        while len(self._sending) < self._concurrency:
            namespace = next(
                (
                    name
                    for name, lane in self._lanes.items()
                    if lane.ready and lane.sending < self._concurrency_per_namespace
                ),
                None,
            )
            if namespace is None:
                return
            lane = self._lanes.pop(namespace)
            self._lanes[namespace] = lane  # to the back of the turn order
            lane.sending += 1
            task = asyncio.create_task(self._send(lane, lane.ready.popleft()))
            self._sending.add(task)

    def _forget_idle_lanes(self) -> None:
        for namespace in [name for name, lane in self._lanes.items() if not lane.pending and not lane.sending]:
            del self._lanes[namespace]

    async def _send(self, lane: _Lane, delivery: _Delivery) -> None:
        try:
            await self._try(lane, delivery)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the task must never die of one message; its text might hold a secret: not shown
            where = traceback.extract_tb(error.__traceback__)[-1]
            log.error(
                "notification %s: unexpected %s at %s:%s",
                delivery.notification.id,
                type(error).__name__,
                where.filename,
                where.lineno,
            )
        finally:
            lane.sending -= 1
            self._sending.discard(asyncio.current_task())
            self._wake.set()

    async def _try(self, lane: _Lane, delivery: _Delivery) -> None:
        notification = delivery.notification
        now = time.monotonic()
        if delivery.first_try is None:
            delivery.first_try = now
        delivery.tries += 1
        target: _Target | None = None
        try:
            target = await asyncio.to_thread(self._read_target, delivery.destination)
            url = webhook_url(target.url, target.source)
            if not self._may_send():
                log.warning("notification %s not sent: this replica no longer leads", notification.id)
                return
            answer = await post(
                url,
                encode(notification),
                request_headers(notification, target.authorization),
                source=target.source,
                allowed=self._allowed,
                deadline_s=self._timeout_s,
                resolve=self._resolve,
                tls=self._tls,
            )
        except DestinationUnavailable as error:
            answer = Answer(None, str(error))
        except WebhookRefused as error:
            self._give_up(delivery, f"refused, not sent: {_redacted(str(error), target)}")
            return
        except (OSError, ValueError) as error:
            answer = Answer(None, f"{type(error).__name__}: {_redacted(str(error), target)}")
        if delivered(answer.status):
            self.delivered += 1
            log.debug("notification %s delivered (%s)", notification.id, answer.status)
            return
        problem = _redacted(_problem(answer), target)
        delay = (
            self._backoff(delivery.tries, time.monotonic() - delivery.first_try)
            if worth_retrying(answer.status)
            else None
        )
        if delay is None:
            self._give_up(delivery, f"not delivered after {delivery.tries} tries, giving up: {problem}")
            return
        log.info("notification %s: try %d failed (%s); again in %.1fs", notification.id, delivery.tries, problem, delay)
        heapq.heappush(lane.waiting, _Waiting(time.monotonic() + delay, next(self._sequence), delivery))

    def _give_up(self, delivery: _Delivery, why: str) -> None:
        self.given_up += 1
        self._on_give_up()
        log.warning("notification %s %s", delivery.notification.id, why)

    def _read_target(self, destination: Destination) -> _Target:
        """The URL and Authorization value (runs in a thread: it may read a Secret)."""
        target = destination.target
        if target.webhookUrl is not None:
            return _Target(target.webhookUrl, f"spec.notifications.webhookUrl (namespace {destination.namespace})")
        ref = target.secretRef
        if ref is None or self._secrets is None:
            raise DestinationUnavailable("no webhook URL and no way to read its Secret")
        secret_name = f"Secret {destination.namespace}/{ref.name}"
        try:
            secret = self._secrets.read_namespaced_secret(
                ref.name, destination.namespace, _request_timeout=self._timeout_s
            )
        except Exception as error:
            raise DestinationUnavailable(f"{secret_name}: {error}") from error
        data: Mapping[str, str] = getattr(secret, "data", None) or {}
        url = _decoded(data, ref.urlKey)
        if not url:
            raise DestinationUnavailable(f"{secret_name} has no key {ref.urlKey}")
        authorization = _decoded(data, ref.authHeaderKey) if ref.authHeaderKey else None
        if authorization is not None and (problem := header_problem("Authorization", authorization)):
            raise WebhookRefused(f"{secret_name} key {ref.authHeaderKey}: {problem}")
        return _Target(url, f"{secret_name} key {ref.urlKey}", authorization)


def _problem(answer: Answer) -> str:
    if answer.problem:
        return answer.problem
    if answer.status is not None and 300 <= answer.status < 400:
        return f"HTTP {answer.status}: a redirect, not followed"
    return f"HTTP {answer.status}"


def _redacted(text: str, target: _Target | None) -> str:
    """`text` without any secret of the try: a server or a library may echo a header back in an error."""
    for secret in target.secrets if target is not None else ():
        text = text.replace(secret, REDACTED)
    return text


def _decoded(data: Mapping[str, str], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode().strip()
    except (ValueError, UnicodeDecodeError):
        return None
