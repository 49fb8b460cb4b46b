"""What asking a surface gives back: an answer, or a failure with the contract's error code.

Every SDK's answers and errors are translated into these two shapes, so the rest of the executor
(the deadline, the result, the evidence, the cost) is the same for every surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class Question:
    """What to ask: the query, its context, and the model and options to ask it with."""

    text: str
    context: str | None
    model: str
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class Answer:
    """A surface's answer and what it reported about it."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    refused: bool = False
    """The model declined to answer (OpenAI's `refusal`, Anthropic's `refusal` stop): not actual content."""
    blocked_by: str | None = None
    """The surface's content filter withheld the answer (why, in words): reported as CONTENT_BLOCKED."""
    request: dict[str, Any] = field(default_factory=dict)
    """The request as sent (without credentials), for the evidence."""
    response: dict[str, Any] = field(default_factory=dict)
    """The whole response, as the SDK parsed it, for the evidence."""


# The contract's codes (docs/executor.md); the operator never retries the never-retried ones.
AUTH_FAILED = "AUTH_FAILED"
RATE_LIMITED = "RATE_LIMITED"
QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
TIMEOUT = "TIMEOUT"
CONTENT_BLOCKED = "CONTENT_BLOCKED"
INVALID_REQUEST = "INVALID_REQUEST"
NETWORK_ERROR = "NETWORK_ERROR"
PROXY_ERROR = "PROXY_ERROR"
UNEXPECTED_RESPONSE = "UNEXPECTED_RESPONSE"

_NEVER_RETRYABLE = frozenset({AUTH_FAILED, QUOTA_EXCEEDED, CONTENT_BLOCKED, INVALID_REQUEST})


class SurfaceFailure(Exception):
    """The surface gave no answer; `code` is the contract's, `retry_after_s` the wait the surface asked for."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        """Whether another attempt could fare better."""
        return self.code not in _NEVER_RETRYABLE


def failure_for_status(
    status: int, message: str, *, retry_after_s: float | None = None, quota: bool = False
) -> SurfaceFailure:
    """The contract's failure for an HTTP error status (`quota`: the 429 says the account is out of credit)."""
    detail = f"HTTP {status}: {message}"
    if status in (401, 403):
        return SurfaceFailure(AUTH_FAILED, detail, http_status=status)
    if status == 429:
        code = QUOTA_EXCEEDED if quota else RATE_LIMITED
        return SurfaceFailure(code, detail, retry_after_s=retry_after_s, http_status=status)
    if status == 402:
        return SurfaceFailure(QUOTA_EXCEEDED, detail, http_status=status)
    if status in (408, 504):
        return SurfaceFailure(TIMEOUT, detail, http_status=status)
    if status >= 500:
        return SurfaceFailure(SERVICE_UNAVAILABLE, detail, retry_after_s=retry_after_s, http_status=status)
    return SurfaceFailure(INVALID_REQUEST, detail, http_status=status)


def retry_after_seconds(headers: Any, now: datetime) -> float | None:
    """The wait a response asks for: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date."""
    if headers is None:
        return None
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    text = headers.get("retry-after")
    if text is None:
        return None
    seconds = _number(text)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds()) if when.tzinfo is not None else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 and value == value else None


def error_body_message(body: object, fallback: str) -> str:
    """The message of an API's JSON error body (`{"error": {"message": ...}}` or `{"message": ...}`)."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return fallback
