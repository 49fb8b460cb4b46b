from __future__ import annotations

import json
from typing import Literal

import pytest
from core_builders import result
from hypothesis import given
from hypothesis import strategies as st

from bentham.api.manifest import EvidenceLevel, QualityGates
from bentham.core.results import CellResult, Verdict, assess_attempt, judge_attempt, judge_result, read_result

GATES = QualityGates()
METADATA = EvidenceLevel.METADATA


def judge_message(message: str | None, gates: QualityGates = GATES, evidence: EvidenceLevel = METADATA) -> Verdict:
    return judge_attempt(
        phase="succeeded",
        termination_message=message,
        failure_reason=None,
        gates=gates,
        evidence_level=evidence,
    )


def test_a_good_result_passes() -> None:
    verdict = judge_message(result())
    assert verdict.passed and verdict.reason == "Passed"


def test_result_ignores_fields_it_does_not_know() -> None:
    parsed = read_result(json.dumps({"success": True, "responseLength": 3, "isActualContent": True, "model": "x"}))
    assert isinstance(parsed, CellResult) and parsed.responseLength == 3


def test_result_reads_error_and_evidence() -> None:
    parsed = read_result(result(success=False, code="TIMEOUT", evidence=True))
    assert isinstance(parsed, CellResult)
    assert parsed.error is not None and parsed.error.code == "TIMEOUT"
    assert parsed.evidence and parsed.evidence[0].sha256 == "ab" * 32


@pytest.mark.parametrize("message", [None, "", "   \n"])
def test_missing_result_is_a_retryable_failure(message: str | None) -> None:
    verdict = judge_message(message)
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "MissingResult", True)


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        "null",
        '{"responseLength": 10}',
        '{"success": "yes"}',
        '{"success": 1}',
        '{"success": true, "responseLength": -1}',
        '{"success": true, "error": "boom"}',
        "{" * 5000,
    ],
)
def test_malformed_result_is_a_retryable_failure(message: str) -> None:
    verdict = judge_message(message)
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "MalformedResult", True)


def test_result_over_4_kib_is_malformed() -> None:
    body = json.dumps({"success": True, "responseLength": 10, "isActualContent": True, "note": "x" * 4_100})
    verdict = judge_message(body)
    assert verdict.reason == "MalformedResult" and "4096" in verdict.message


@given(st.text(max_size=5_000))
def test_reading_any_text_never_raises(message: str) -> None:
    assert isinstance(read_result(message), CellResult | Verdict)
    assert isinstance(judge_message(message), Verdict)
    failed = judge_attempt(
        phase="failed",
        termination_message=message,
        failure_reason="DeadlineExceeded",
        gates=GATES,
        evidence_level=METADATA,
    )
    assert isinstance(failed, Verdict)
    if not isinstance(read_result(message), CellResult):
        assert (failed.passed, failed.reason) == (False, "ExecutorFailed")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )
)
def test_reading_any_json_never_raises(value: object) -> None:
    assert isinstance(judge_message(json.dumps(value)), Verdict)


def test_unsuccessful_result_fails_and_is_retryable_by_default() -> None:
    verdict = judge_message(result(success=False, code="TIMEOUT"))
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "ExecutorError", True)
    assert "TIMEOUT" in verdict.message


def test_unsuccessful_result_without_error_is_retryable() -> None:
    verdict = judge_message(json.dumps({"success": False}))
    assert (verdict.passed, verdict.retryable) == (False, True)


@pytest.mark.parametrize("code", ["AUTH_FAILED", "QUOTA_EXCEEDED", "INVALID_REQUEST", "CONTENT_BLOCKED"])
def test_error_codes_never_worth_retrying_are_not_retryable(code: str) -> None:
    verdict = judge_message(result(success=False, code=code, retryable=True))
    assert (verdict.passed, verdict.retryable) == (False, False)


def test_an_error_the_executor_marks_not_retryable_is_not_retried() -> None:
    assert not judge_message(result(success=False, code="SURFACE_GONE", retryable=False)).retryable


def test_not_actual_content_fails_the_gate_when_required() -> None:
    verdict = judge_message(result(actual=False))
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "NotActualContent", True)
    assert judge_message(result(actual=False), QualityGates(requireActualContent=False)).passed


def test_empty_response_is_not_actual_content() -> None:
    assert judge_message(result(length=0)).reason == "NotActualContent"


def test_too_short_response_fails_the_gate_and_may_be_retried() -> None:
    gates = QualityGates(minResponseLength=500)
    verdict = judge_message(result(length=499), gates)
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "ResponseTooShort", True)
    assert judge_message(result(length=500), gates).passed


def test_min_response_length_zero_turns_the_gate_off() -> None:
    assert judge_message(result(length=1), QualityGates(minResponseLength=0)).passed


def test_full_evidence_level_fails_a_result_without_evidence() -> None:
    verdict = judge_message(result(), evidence=EvidenceLevel.FULL)
    assert (verdict.passed, verdict.reason) == (False, "MissingEvidence")
    assert judge_message(result(evidence=True), evidence=EvidenceLevel.FULL).passed


@pytest.mark.parametrize(
    ("evidence", "problem"),
    [
        ([{}], "evidence[0] has no url"),
        ([{"sha256": "ab" * 32}], "evidence[0] has no url"),
        ([{"url": "s3://bucket/e.json"}], "evidence[0].sha256 is not 64 hexadecimal digits"),
        ([{"url": "s3://bucket/e.json", "sha256": "ab" * 31}], "evidence[0].sha256 is not 64 hexadecimal digits"),
        ([{"url": "s3://b/1.json", "sha256": "ab" * 32}, {"url": "s3://b/2.json", "sha256": "zz" * 32}],
         "evidence[1].sha256 is not 64 hexadecimal digits"),
    ],
)  # fmt: skip
def test_full_evidence_needs_a_url_and_a_sha256_in_every_item(evidence: list[dict[str, str]], problem: str) -> None:
    message = json.dumps({"success": True, "responseLength": 800, "isActualContent": True, "evidence": evidence})

    verdict = judge_message(message, evidence=EvidenceLevel.FULL)

    assert (verdict.passed, verdict.reason) == (False, "MissingEvidence")
    assert problem in verdict.message


def test_failed_job_without_a_result_is_executor_failed_and_retryable() -> None:
    verdict = judge_attempt(
        phase="failed",
        termination_message=None,
        failure_reason="DeadlineExceeded",
        gates=GATES,
        evidence_level=METADATA,
    )
    assert (verdict.passed, verdict.reason, verdict.retryable) == (False, "ExecutorFailed", True)
    assert "DeadlineExceeded" in verdict.message


def test_failed_job_with_a_log_tail_says_what_the_log_said() -> None:
    verdict = judge_attempt(
        phase="failed",
        termination_message="Traceback...\nKeyError: 'proxy'",
        failure_reason="BackoffLimitExceeded",
        gates=GATES,
        evidence_level=METADATA,
    )
    assert verdict.reason == "ExecutorFailed" and "KeyError" in verdict.message


def test_failed_job_that_reported_its_error_keeps_the_error_code() -> None:
    verdict = judge_attempt(
        phase="failed",
        termination_message=result(success=False, code="AUTH_FAILED"),
        failure_reason="BackoffLimitExceeded",
        gates=GATES,
        evidence_level=METADATA,
    )
    assert (verdict.reason, verdict.retryable) == ("ExecutorError", False)


def test_failed_job_that_wrote_a_result_is_judged_by_its_result() -> None:
    verdict = judge_attempt(
        phase="failed",
        termination_message=result(),
        failure_reason="DeadlineExceeded",
        gates=GATES,
        evidence_level=METADATA,
    )
    assert verdict.passed


def test_judge_result_applies_gates_in_order() -> None:
    parsed = CellResult(success=True, responseLength=0, isActualContent=False)
    assert judge_result(parsed, QualityGates(minResponseLength=10), EvidenceLevel.FULL).reason == "NotActualContent"


def cost_of(message: str | None, phase: Literal["succeeded", "failed"] = "succeeded") -> int | None:
    """The attempt's reported cost, in micro-dollars."""
    return assess_attempt(
        phase=phase, termination_message=message, failure_reason=None, gates=GATES, evidence_level=METADATA
    ).cost_micro_usd


def with_cost(usd: object, message: str | None = None) -> str:
    return json.dumps(json.loads(message or result()) | {"costUsd": usd})


def test_an_attempt_reports_its_cost_whatever_its_verdict() -> None:
    assert cost_of(with_cost(0.0042)) == 4_200
    assert cost_of(with_cost(3)) == 3_000_000
    assert cost_of(with_cost(0.01, result(success=False, code="TIMEOUT")), phase="failed") == 10_000
    assert cost_of(with_cost(0.01, result(actual=False))) == 10_000
    assert cost_of(result()) is None
    assert cost_of(with_cost(None)) is None, "null is not reported"
    assert cost_of(None, phase="failed") is None


@pytest.mark.parametrize("usd", [-0.01, "0.01", True, 1e7])
def test_a_cost_that_is_not_a_number_of_dollars_makes_the_result_malformed(usd: object) -> None:
    message = with_cost(usd)
    verdict = judge_message(message)
    assert verdict.reason == "MalformedResult" and "costUsd" in verdict.message
    assert cost_of(message) is None


def test_a_cost_of_nan_or_infinity_makes_the_result_malformed() -> None:
    for text in ("NaN", "Infinity"):
        message = result()[:-1] + f', "costUsd": {text}}}'
        assert judge_message(message).reason == "MalformedResult"
