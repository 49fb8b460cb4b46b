from __future__ import annotations

from datetime import timedelta

import pytest
from core_builders import T0, make_spec
from hypothesis import given
from hypothesis import strategies as st

from bentham.api.manifest import BackoffStrategy, Retry, RetryConditions
from bentham.api.spec import StudySpec
from bentham.core.results import Verdict
from bentham.core.retries import backoff_seconds, conditions_of, may_retry, retry_at

RETRYABLE = Verdict.failure("ExecutorError", "TIMEOUT")
FINAL = Verdict.failure("ExecutorError", "AUTH_FAILED", retryable=False)


@pytest.mark.parametrize(
    ("attempt", "nominal"), [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 60), (10, 60), (31, 60)]
)
def test_backoff_doubles_from_one_second_and_caps_at_sixty(attempt: int, nominal: float) -> None:
    for cell in range(50):
        delay = backoff_seconds(attempt, study_uid="uid", cell_index=cell)
        assert nominal * 0.8 <= delay <= nominal


@given(uid=st.text(max_size=40), cell=st.integers(0, 10**6), attempt=st.integers(1, 40))
def test_backoff_jitter_stays_within_twenty_percent_below_nominal(uid: str, cell: int, attempt: int) -> None:
    nominal = min(2.0 ** (attempt - 1), 60.0)
    delay = backoff_seconds(attempt, study_uid=uid, cell_index=cell)
    assert nominal * 0.8 <= delay <= nominal
    assert delay == backoff_seconds(attempt, study_uid=uid, cell_index=cell)


def test_backoff_jitter_spreads_a_burst_of_failures() -> None:
    delays = {backoff_seconds(7, study_uid="uid", cell_index=cell) for cell in range(100)}
    assert len(delays) > 50


def test_retry_at_is_the_failure_time_plus_the_backoff_to_the_millisecond() -> None:
    failed_at = T0 + timedelta(microseconds=123_456)
    due = retry_at(failed_at, 3, study_uid="uid", cell_index=9)
    assert due.microsecond % 1000 == 0
    assert timedelta(seconds=3.2) <= due - failed_at <= timedelta(seconds=4)


def test_max_retries_per_cell_counts_attempts() -> None:
    assert not may_retry(RETRYABLE, attempts=1, max_attempts=1)  # 1 = one try, no retry
    assert may_retry(RETRYABLE, attempts=1, max_attempts=3)
    assert may_retry(RETRYABLE, attempts=2, max_attempts=3)
    assert not may_retry(RETRYABLE, attempts=3, max_attempts=3)


def test_non_retryable_failures_and_passes_are_never_retried() -> None:
    assert not may_retry(FINAL, attempts=1, max_attempts=10)
    assert not may_retry(Verdict(True, "Passed", "", False), attempts=1, max_attempts=10)


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        backoff_seconds(0, study_uid="uid", cell_index=0)


def test_fixed_linear_and_exponential_backoff_follow_the_manifest() -> None:
    fixed = Retry(backoffStrategy=BackoffStrategy.FIXED, initialDelayMs=2_000, jitter=False)
    linear = Retry(backoffStrategy=BackoffStrategy.LINEAR, initialDelayMs=2_000, maxDelayMs=7_000, jitter=False)
    steep = Retry(initialDelayMs=500, backoffMultiplier=3, maxDelayMs=10_000, jitter=False)

    def delays(policy: Retry) -> list[float]:
        return [backoff_seconds(n, study_uid="uid", cell_index=0, policy=policy) for n in range(1, 6)]

    assert delays(fixed) == [2, 2, 2, 2, 2]
    assert delays(linear) == [2, 4, 6, 7, 7]  # capped at maxDelayMs
    assert delays(steep) == [0.5, 1.5, 4.5, 10, 10]


def test_without_jitter_every_cell_waits_the_same() -> None:
    policy = Retry(jitter=False)
    assert {backoff_seconds(3, study_uid="uid", cell_index=cell, policy=policy) for cell in range(50)} == {4}


def test_written_retry_conditions_stop_the_retries_they_name() -> None:
    conditions = RetryConditions(onTimeout=False, onCaptchaRequired=True)
    timeout = Verdict.failure("ExecutorError", "took too long", code="TIMEOUT")
    killed = Verdict.failure("DeadlineExceeded", "the Job ran out of time")
    captcha = Verdict.failure("ExecutorError", "a CAPTCHA", code="CAPTCHA")
    short = Verdict.failure("ResponseTooShort", "12 characters")
    assert not may_retry(timeout, attempts=1, max_attempts=3, conditions=conditions)
    assert not may_retry(killed, attempts=1, max_attempts=3, conditions=conditions)
    assert may_retry(captcha, attempts=1, max_attempts=3, conditions=conditions)
    assert may_retry(short, attempts=1, max_attempts=3, conditions=conditions)
    assert not may_retry(short, attempts=1, max_attempts=3, conditions=RetryConditions(onInvalidResponse=False))
    # Without a written execution.retry no condition applies: a CAPTCHA is retried as before.
    assert may_retry(captcha, attempts=1, max_attempts=3)


def test_execution_retry_max_retries_decides_the_attempts_when_written() -> None:
    raw = make_spec(max_retries=5)
    assert StudySpec.model_validate(raw).manifest.max_attempts == 5
    raw["manifest"]["execution"] = {"retry": {"maxRetries": 0}}
    assert StudySpec.model_validate(raw).manifest.max_attempts == 1
    raw["manifest"]["execution"] = {"retry": {"backoffStrategy": "linear"}}
    manifest = StudySpec.model_validate(raw).manifest
    assert manifest.max_attempts == 5 and conditions_of(manifest) == RetryConditions()
    raw["manifest"]["execution"] = {"maxConcurrency": 4}
    assert conditions_of(StudySpec.model_validate(raw).manifest) is None
