"""The webhook's JSON body, headers and retry schedule."""

from __future__ import annotations

import json

import pytest

from bentham.core.decision import Notification
from bentham.core.webhook_format import (
    GIVE_UP_AFTER_SECONDS,
    MAX_ATTEMPTS,
    delivered,
    delivery_schedule,
    encode,
    request_headers,
    retry_delay,
    webhook_body,
    worth_retrying,
)

NOTE = Notification(
    event="study.at_risk",
    id="uid-1:study.at_risk:2030-01-01T13:00:00Z:0",
    payload={
        "study": {"name": "s", "namespace": "n", "uid": "uid-1", "tenantId": "acme"},
        "state": "executing",
        "message": "Behind schedule: café",
    },
)


def test_body_is_the_id_and_event_then_the_payload() -> None:
    body = webhook_body(NOTE)
    assert body["id"] == NOTE.id and body["event"] == "study.at_risk" and body["state"] == "executing"
    assert json.loads(encode(NOTE)) == body


def test_encoding_is_the_same_bytes_every_time_and_utf8() -> None:
    assert encode(NOTE) == encode(NOTE) and "café".encode() in encode(NOTE)


def test_headers_carry_the_id_for_deduplication_and_the_auth_header_only_when_given() -> None:
    headers = request_headers(NOTE, None)
    assert headers["Content-Type"] == "application/json" and headers["Idempotency-Key"] == NOTE.id
    assert headers["X-Bentham-Event"] == "study.at_risk" and "Authorization" not in headers
    assert request_headers(NOTE, "Bearer t0k3n")["Authorization"] == "Bearer t0k3n"


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (301, True),
        (302, True),
        (307, True),
        (400, False),
        (401, False),
        (404, False),
    ],
)
def test_network_errors_timeouts_redirects_throttling_and_5xx_are_retried_other_refusals_are_not(
    status: int | None, retry: bool
) -> None:
    assert worth_retrying(status) is retry


def test_only_2xx_delivers() -> None:
    assert delivered(200) and delivered(204) and not delivered(302) and not delivered(None)


def test_retries_back_off_1_2_4_capped_at_60_seconds_then_give_up() -> None:
    assert delivery_schedule() == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert len(delivery_schedule()) == MAX_ATTEMPTS - 1
    assert retry_delay(MAX_ATTEMPTS, elapsed=0) is None


def test_delivery_gives_up_when_out_of_time() -> None:
    assert retry_delay(3, elapsed=GIVE_UP_AFTER_SECONDS - 1) is None
    assert retry_delay(3, elapsed=0) == 4


def test_tries_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0, elapsed=0)
