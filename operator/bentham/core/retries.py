"""How many attempts a cell gets, which failures earn another, and how long it waits between them.

A cell gets `Manifest.max_attempts` attempts: `execution.retry.maxRetries + 1` when the tenant
wrote it, else `completionCriteria.maxRetriesPerCell` (attempts, first try included: 1 is one try
and no retry).

Before attempt n+1 the cell waits per `execution.retry` (its defaults are today's behaviour for a
manifest without an execution block): `fixed` waits initialDelayMs every time, `linear`
initialDelayMs x n, `exponential` initialDelayMs x multiplier^(n-1); never more than maxDelayMs.
With `jitter` the delay is shortened by up to 20% so the cells of a burst do not all come back at
once. The jitter comes from a hash of (study uid, cell index, attempt), not a random source: the
core stays pure and the same failure always schedules the same retry.

Which failures are retried: never those the executor or the validator call not retryable
(AUTH_FAILED, ...). When the manifest writes `execution.retry`, its `retryConditions` also apply:
each maps some failures (below) and a condition set to false stops their retries. Without an
execution block every retryable failure is retried, as before.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from bentham.api.manifest import BackoffStrategy, Manifest, Retry, RetryConditions
from bentham.core.results import Verdict
from bentham.core.timestamps import truncate_to_millis

JITTER = 0.2
DEFAULT_RETRY = Retry()

# The condition of execution.retry.retryConditions that decides whether a failure is retried.
_CONDITION_OF: dict[str, str] = {
    "RATE_LIMITED": "onRateLimited",
    "NETWORK_ERROR": "onNetworkError",
    "SERVICE_UNAVAILABLE": "onServiceUnavailable",
    "TIMEOUT": "onTimeout",
    "DeadlineExceeded": "onTimeout",  # the Job ran past activeDeadlineSeconds
    "INVALID_RESPONSE": "onInvalidResponse",
    "MalformedResult": "onInvalidResponse",
    "MissingResult": "onInvalidResponse",
    "NotActualContent": "onInvalidResponse",
    "ResponseTooShort": "onInvalidResponse",
    "MissingEvidence": "onInvalidResponse",
    "SESSION_EXPIRED": "onSessionExpired",
    "CAPTCHA": "onCaptchaRequired",
}


def retry_policy(manifest: Manifest) -> Retry:
    """The manifest's retry settings (their defaults when it has no execution block)."""
    return manifest.execution.retry if manifest.execution is not None else DEFAULT_RETRY


def conditions_of(manifest: Manifest) -> RetryConditions | None:
    """The retry conditions in force: only those of a written `execution.retry`."""
    execution = manifest.execution
    return execution.retry.retryConditions if execution is not None and "retry" in execution.model_fields_set else None


def may_retry(verdict: Verdict, *, attempts: int, max_attempts: int, conditions: RetryConditions | None = None) -> bool:
    """Whether a failed attempt (the `attempts`-th of the cell's budget) earns another one."""
    if verdict.passed or not verdict.retryable or attempts >= max_attempts:
        return False
    if conditions is None:
        return True
    condition = _CONDITION_OF.get(verdict.code or "") or _CONDITION_OF.get(verdict.reason)
    return condition is None or bool(getattr(conditions, condition))


def backoff_seconds(attempt: int, *, study_uid: str, cell_index: int, policy: Retry = DEFAULT_RETRY) -> float:
    """Seconds to wait after attempt `attempt` (1-based) failed, jitter included, whole ms."""
    if attempt < 1:
        raise ValueError(f"attempts are numbered from 1, not {attempt}")
    first = policy.initialDelayMs / 1000
    if policy.backoffStrategy is BackoffStrategy.FIXED:
        nominal = first
    elif policy.backoffStrategy is BackoffStrategy.LINEAR:
        nominal = first * attempt
    else:
        nominal = first * policy.backoffMultiplier ** min(attempt - 1, 64)
    nominal = min(nominal, policy.maxDelayMs / 1000)
    if policy.jitter:
        nominal *= 1 - JITTER * _unit_fraction(f"{study_uid}/{cell_index}/{attempt}")
    return math.ceil(nominal * 1000) / 1000


def retry_at(
    failed_at: datetime, attempt: int, *, study_uid: str, cell_index: int, policy: Retry = DEFAULT_RETRY
) -> datetime:
    """When attempt `attempt + 1` of the cell may start, in UTC, to the millisecond."""
    # Whole milliseconds, so the time survives the checkpoint's millisecond encoding unchanged.
    delay = backoff_seconds(attempt, study_uid=study_uid, cell_index=cell_index, policy=policy)
    return truncate_to_millis(failed_at) + timedelta(seconds=delay)


def _unit_fraction(text: str) -> float:
    """A number in [0, 1) drawn from the hash of `text`."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64
