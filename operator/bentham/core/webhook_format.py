"""The webhook's wire format and delivery schedule, as pure functions for the shell's notifier.

Each notification is one HTTP POST of a JSON object (see docs/lifecycle.md, "Notifications"):

    {"id": "<study uid>:study.at_risk:2030-01-01T12:00:00Z:0", "event": "study.at_risk",
     "study": {"name": ..., "namespace": ..., "uid": ..., "tenantId": ...},
     "state": "executing", "reason": "BehindSchedule", "message": "...",
     "timestamp": "2030-01-01T12:00:00.000Z", "progress": {...}, "deadline": {...}}

with `Content-Type: application/json`, `Idempotency-Key` and `X-Bentham-Delivery` set to the
id, `X-Bentham-Event` to the event, and `Authorization` from the study's Secret when it has one.
A 2xx answer delivers it. A network error, a try over its deadline (`REQUEST_TIMEOUT_SECONDS`
for the whole try: DNS, connect, TLS, sending and the answer), a redirect (3xx: never followed),
408, 425, 429 or a 5xx is retried after 1, 2, 4, 8, 16, 32, 60, 60 ... seconds, for at most
`MAX_ATTEMPTS` tries and `GIVE_UP_AFTER_SECONDS`; any other answer (a 4xx: the receiver refuses
it) gives up at once.
Delivery is at least once within that budget: receivers de-duplicate on the id.
"""

from __future__ import annotations

import json
from typing import Any

from bentham.core.decision import Notification

CONTENT_TYPE = "application/json"
USER_AGENT = "bentham-operator"
REQUEST_TIMEOUT_SECONDS = 5.0
"""The deadline of one whole try: resolving, connecting, TLS, sending and reading the answer."""
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
MAX_ATTEMPTS = 10
GIVE_UP_AFTER_SECONDS = 600.0
RETRIED_STATUSES = frozenset({408, 425, 429})


def webhook_body(notification: Notification) -> dict[str, Any]:
    """The JSON object posted for `notification`: its id and event, then its payload."""
    return {"id": notification.id, "event": notification.event, **notification.payload}


def encode(notification: Notification) -> bytes:
    """The request body: compact UTF-8 JSON with sorted keys, the same bytes on every retry."""
    return json.dumps(webhook_body(notification), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_headers(notification: Notification, authorization: str | None) -> dict[str, str]:
    """The request's headers; `authorization` is the Authorization header's value, if any."""
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        "Idempotency-Key": notification.id,
        "X-Bentham-Delivery": notification.id,
        "X-Bentham-Event": notification.event,
    }
    if authorization:
        headers["Authorization"] = authorization
    return headers


def worth_retrying(status: int | None) -> bool:
    """Whether a failed delivery may succeed later; None is a network error or a timeout.

    A redirect is not followed (it would carry the Authorization header elsewhere, and turn the
    POST into a GET): it fails the try like a 5xx, and the receiver may stop redirecting.
    """
    return status is None or status in RETRIED_STATUSES or 300 <= status < 400 or status >= 500


def delivered(status: int | None) -> bool:
    """Whether the answer means the receiver has the notification."""
    return status is not None and 200 <= status < 300


def retry_delay(attempts: int, *, elapsed: float) -> float | None:
    """Seconds to wait before the next try after `attempts` failed tries, `elapsed` seconds in.

    None when the delivery should give up: out of tries, or out of time.
    """
    if attempts < 1:
        raise ValueError(f"tries are counted from 1, not {attempts}")
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = min(FIRST_RETRY_SECONDS * 2.0 ** min(attempts - 1, 32), MAX_RETRY_SECONDS)
    if elapsed + delay > GIVE_UP_AFTER_SECONDS:
        return None
    return delay


def delivery_schedule() -> list[float]:
    """The waits between tries when every try fails at once: 1, 2, 4, ... capped at 60 s."""
    waits: list[float] = []
    elapsed = 0.0
    while (delay := retry_delay(len(waits) + 1, elapsed=elapsed)) is not None:
        waits.append(delay)
        elapsed += delay
    return waits
