"""Each API surface's official SDK, pointed at a local server speaking that service's wire format.

For every surface: a good answer, an empty answer, a refusal, a content filter, 401/403, 429 with
Retry-After (waited out when it fits in the query's time, reported when it does not), 500, and a
hang past the query timeout each produce the documented result (docs/executor.md), and the result
is one the operator's own parser reads and judges as documented.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from bentham.api.manifest import EvidenceLevel, QualityGates
from bentham.core.results import CellResult, judge_result, read_result
from bentham_executor.run import EXIT_REPORTED, WATCHDOG_GRACE_SECONDS, Outcome, run_attempt
from tests.executor.dialects import ANSWER_TOKENS, DIALECTS, GOOGLE, PROMPT_TOKENS, Dialect
from tests.executor.helpers import API_KEY, default_model, env_for, expected_cost
from tests.executor.servers import Reply, WireService

SURFACES = pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.surface)


def operator_reads(outcome: Outcome) -> CellResult:
    """The result as the operator parses it from the termination message."""
    parsed = read_result(outcome.message)
    assert isinstance(parsed, CellResult), parsed
    return parsed


def operator_verdict(outcome: Outcome) -> str:
    return judge_result(operator_reads(outcome), QualityGates(), EvidenceLevel.FULL).reason


def stored_bytes(url: str) -> bytes:
    return Path(unquote(urlsplit(url).path)).read_bytes()


@SURFACES
def test_a_good_answer_is_reported_with_its_length_tokens_cost_and_evidence(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    text = "Brooks Adrenaline and ASICS Kayano are the usual picks."
    service.script(dialect.good(text))

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    result = outcome.result
    assert outcome.exit_code == EXIT_REPORTED
    assert result.success and result.error is None
    assert result.responseLength == len(text) and result.isActualContent
    assert result.responseTimeMs is not None and result.responseTimeMs >= 0
    assert (result.inputTokens, result.outputTokens) == (PROMPT_TOKENS, ANSWER_TOKENS)
    model = default_model(dialect.surface)
    assert result.model == model
    assert result.costUsd == expected_cost(dialect.surface, model)
    assert result.evidence is not None and len(result.evidence) == 1
    reference = result.evidence[0]
    assert reference.url is not None and reference.sha256 == hashlib.sha256(stored_bytes(reference.url)).hexdigest()
    assert operator_verdict(outcome) == "Passed"
    [request] = service.received
    assert request.path == dialect.request_path(model)
    assert any(API_KEY in value for value in request.headers.values()), "the key from the Secret is sent"
    assert "Question number 0?" in str(request.body)


@SURFACES
def test_options_model_picks_the_model_and_prices_it(dialect: Dialect, service: WireService, tmp_path: Path) -> None:
    table_models = {
        "openai-api": "gpt-4o",
        "anthropic-api": "claude-sonnet-4-20250514",
        "google-ai-api": "gemini-2.5-pro",
        "perplexity-api": "sonar-pro",
    }
    model = table_models[dialect.surface]
    service.script(dialect.good())

    outcome = run_attempt(env_for(dialect, service.url, tmp_path, model=model))

    assert outcome.result.model == model
    assert outcome.result.costUsd == expected_cost(dialect.surface, model)
    assert service.received[0].path == dialect.request_path(model)
    assert model in str(service.received[0].body) or model in service.received[0].path


@SURFACES
def test_an_empty_answer_is_not_actual_content(dialect: Dialect, service: WireService, tmp_path: Path) -> None:
    service.script(Reply(body=dialect.answer("")))

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    assert outcome.result.success and outcome.exit_code == EXIT_REPORTED
    assert outcome.result.responseLength == 0 and not outcome.result.isActualContent
    assert operator_verdict(outcome) == "NotActualContent"


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.refusal is not None], ids=lambda d: d.surface)
def test_a_refusal_is_an_answer_but_not_actual_content(dialect: Dialect, service: WireService, tmp_path: Path) -> None:
    assert dialect.refusal is not None
    service.script(dialect.refusal)

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    assert outcome.result.success and not outcome.result.isActualContent
    assert outcome.result.costUsd == expected_cost(dialect.surface, default_model(dialect.surface)), "tokens are billed"
    assert operator_verdict(outcome) == "NotActualContent"


@pytest.mark.parametrize("dialect", [d for d in DIALECTS if d.blocked is not None], ids=lambda d: d.surface)
def test_a_content_filter_is_content_blocked_and_never_retried(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    assert dialect.blocked is not None
    service.script(dialect.blocked)

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    error = outcome.result.error
    assert not outcome.result.success and error is not None
    assert (error.code, error.retryable) == ("CONTENT_BLOCKED", False)
    assert "filter" in error.message
    assert outcome.exit_code == EXIT_REPORTED
    assert outcome.result.evidence, "what the filter withheld is evidence too"
    verdict = judge_result(operator_reads(outcome), QualityGates(), EvidenceLevel.FULL)
    assert (verdict.reason, verdict.retryable) == ("ExecutorError", False)


def test_a_google_answer_whose_prompt_is_blocked_is_content_blocked(service: WireService, tmp_path: Path) -> None:
    service.script(Reply(body={"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}))

    outcome = run_attempt(env_for(GOOGLE, service.url, tmp_path))

    assert outcome.result.error is not None and outcome.result.error.code == "CONTENT_BLOCKED"
    assert "block_reason SAFETY" in outcome.result.error.message


@SURFACES
@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_auth_failed_and_never_retried(
    dialect: Dialect, status: int, service: WireService, tmp_path: Path
) -> None:
    service.script(dialect.failing(status, "invalid api key"))

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    error = outcome.result.error
    assert error is not None and (error.code, error.retryable) == ("AUTH_FAILED", False)
    assert f"HTTP {status}" in error.message and "invalid api key" in error.message
    assert outcome.exit_code == EXIT_REPORTED
    assert outcome.result.costUsd == 0.0, "a rejected request is not billed"
    assert len(service.received) == 1, "nothing is retried inside the attempt"


@SURFACES
def test_a_429_whose_retry_after_fits_is_waited_out_within_the_attempt(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    service.script(dialect.failing(429, "slow down", **{"retry-after": "1"}), dialect.good())

    outcome = run_attempt(env_for(dialect, service.url, tmp_path, overrides={"BENTHAM_QUERY_TIMEOUT_MS": "8000"}))

    assert outcome.result.success, outcome.result.error
    first, second = service.received
    assert second.at - first.at >= 1.0, "the Retry-After was honoured"


@SURFACES
def test_a_429_whose_retry_after_does_not_fit_is_rate_limited_and_retryable(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    service.script(dialect.failing(429, "slow down", **{"retry-after": "60"}))
    started = time.monotonic()

    outcome = run_attempt(env_for(dialect, service.url, tmp_path, overrides={"BENTHAM_QUERY_TIMEOUT_MS": "5000"}))

    error = outcome.result.error
    assert error is not None and (error.code, error.retryable) == ("RATE_LIMITED", True)
    assert "retry after 60 s" in error.message
    assert time.monotonic() - started < 5, "reported at once, not slept on"
    assert len(service.received) == 1
    verdict = judge_result(operator_reads(outcome), QualityGates(), EvidenceLevel.FULL)
    assert verdict.retryable


@SURFACES
def test_a_server_error_is_service_unavailable_and_retryable(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    service.script(dialect.failing(500, "internal error"))

    outcome = run_attempt(env_for(dialect, service.url, tmp_path))

    error = outcome.result.error
    assert error is not None and (error.code, error.retryable) == ("SERVICE_UNAVAILABLE", True)
    assert len(service.received) == 1, "the SDK's own retries are off: the operator retries, with backoff"


@SURFACES
def test_a_hang_past_the_query_timeout_is_a_timeout(dialect: Dialect, service: WireService, tmp_path: Path) -> None:
    service.script(Reply(body=dialect.answer("too late"), delay_s=30))
    started = time.monotonic()

    outcome = run_attempt(env_for(dialect, service.url, tmp_path, overrides={"BENTHAM_QUERY_TIMEOUT_MS": "1500"}))

    elapsed = time.monotonic() - started
    error = outcome.result.error
    assert error is not None and (error.code, error.retryable) == ("TIMEOUT", True), error
    assert 1.4 <= elapsed < 1.5 + WATCHDOG_GRACE_SECONDS + 1.0
    assert outcome.result.costUsd is None, "whether a timed-out call was billed is unknown"
