"""The executor as a whole: surfaces it does not serve, its own configuration, its cost, and the command's contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bentham.api.manifest import SurfaceId
from bentham.core.results import CellResult, read_result
from bentham_executor.catalog import API_SURFACES
from bentham_executor.run import EXIT_MISCONFIGURED, EXIT_REPORTED, run_attempt
from tests.executor.contract import run_executor_command
from tests.executor.dialects import ANTHROPIC, DIALECTS, OPENAI, Dialect
from tests.executor.helpers import env_for, expected_cost
from tests.executor.servers import Reply, WireService

WEB_SURFACES = [surface.value for surface in SurfaceId if surface.value not in API_SURFACES]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("surface", WEB_SURFACES)
def test_a_surface_without_an_api_is_refused_at_once_naming_the_executor_that_serves_it(surface: str) -> None:
    outcome = run_attempt({"BENTHAM_SURFACE": surface})

    error = outcome.result.error
    assert error is not None and error.code == "SURFACE_NOT_SUPPORTED" and not error.retryable
    assert surface in error.message and "browser executor" in error.message
    assert outcome.exit_code == EXIT_REPORTED


def test_a_missing_api_key_is_auth_failed_before_anything_is_asked(service: WireService, tmp_path: Path) -> None:
    service.script(OPENAI.good())
    env = env_for(OPENAI, service.url, tmp_path)
    del env["OPENAI_API_KEY"]

    outcome = run_attempt(env)

    error = outcome.result.error
    assert error is not None and (error.code, error.retryable) == ("AUTH_FAILED", False)
    assert "OPENAI_API_KEY" in error.message and "Secret" in error.message
    assert outcome.exit_code == EXIT_MISCONFIGURED
    assert service.received == []


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("BENTHAM_STUDY_UID", None, "BENTHAM_STUDY_UID is not set"),
        ("BENTHAM_ATTEMPT", "0", "BENTHAM_ATTEMPT must be at least 1"),
        ("BENTHAM_EVIDENCE_LEVEL", "most", "BENTHAM_EVIDENCE_LEVEL must be full, metadata or none"),
        ("BENTHAM_SURFACE_OPTIONS", "[1]", "BENTHAM_SURFACE_OPTIONS must be a JSON object"),
        ("BENTHAM_QUERY_TIMEOUT_MS", "soon", "BENTHAM_QUERY_TIMEOUT_MS must be a whole number"),
    ],
)
def test_an_environment_it_cannot_run_names_the_variable_and_the_rule(
    variable: str, value: str | None, problem: str, service: WireService, tmp_path: Path
) -> None:
    service.script(OPENAI.good())
    env = env_for(OPENAI, service.url, tmp_path)
    if value is None:
        del env[variable]
    else:
        env[variable] = value

    outcome = run_attempt(env)

    error = outcome.result.error
    assert error is not None and error.code == "EXECUTOR_MISCONFIGURED" and not error.retryable
    assert problem in error.message
    assert outcome.exit_code == EXIT_MISCONFIGURED
    assert service.received == []


def test_a_model_the_pricing_table_does_not_list_costs_what_the_estimate_charges_for_it(
    service: WireService, tmp_path: Path
) -> None:
    service.script(OPENAI.good())

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, model="gpt-9-experimental"))

    assert outcome.result.costUsd == 0.01, "pricing.yaml's unknownSurfaceRequestUsd"


def test_an_admins_pricing_file_prices_the_attempt(service: WireService, tmp_path: Path) -> None:
    service.script(ANTHROPIC.good())
    table = tmp_path / "pricing.yaml"
    table.write_text(
        "surfaces:\n  anthropic-api:\n    defaultModel: house-model\n    models:\n"
        "      house-model: {inputUsdPer1kTokens: 1, outputUsdPer1kTokens: 2, requestUsd: 0.5}\n"
    )
    env = env_for(ANTHROPIC, service.url, tmp_path, env=[{"name": "BENTHAM_PRICING_FILE", "value": str(table)}])

    outcome = run_attempt(env)

    # 12 tokens in at $1/1k, 300 out at $2/1k, $0.5 a request; and the admin's default model is asked.
    assert outcome.result.model == "house-model"
    assert outcome.result.costUsd == round(12 / 1000 + 600 / 1000 + 0.5, 6)
    assert "house-model" in json.dumps(service.received[0].body)


def test_a_long_error_still_fits_in_a_termination_message(service: WireService, tmp_path: Path) -> None:
    service.script(OPENAI.failing(500, "x" * 20_000))

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path))

    assert len(outcome.message.encode()) < 4_096
    assert isinstance(read_result(outcome.message), CellResult)


def run_command(env: dict[str, str], tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """The command's exit code, termination message and stdout."""
    exited = run_executor_command(env, tmp_path / "termination-log")
    return exited.code, exited.message, exited.stdout


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.surface)
def test_the_command_writes_its_result_to_the_termination_log_and_exits_0(
    dialect: Dialect, service: WireService, tmp_path: Path
) -> None:
    service.script(dialect.good("An answer."))
    model = {
        "openai-api": "gpt-4o-mini",
        "anthropic-api": "claude-3-5-haiku-latest",
        "google-ai-api": "gemini-2.0-flash",
        "perplexity-api": "sonar",
    }[dialect.surface]

    code, message, stdout = run_command(env_for(dialect, service.url, tmp_path), tmp_path)

    assert code == 0, stdout
    assert message["success"] is True and message["responseLength"] == len("An answer.")
    assert message["costUsd"] == expected_cost(dialect.surface, model)
    assert json.loads(stdout.strip().splitlines()[-1]) == message, "the result is logged too"


def test_the_command_exits_0_with_a_failed_result_and_2_when_misconfigured(
    service: WireService, tmp_path: Path
) -> None:
    service.script(Reply(status=401, body=OPENAI.error(401, "bad key")))
    env = env_for(OPENAI, service.url, tmp_path)

    code, message, _ = run_command(env, tmp_path)
    assert code == 0 and message["error"] == {"code": "AUTH_FAILED", "message": "HTTP 401: bad key", "retryable": False}

    code, message, _ = run_command({k: v for k, v in env.items() if k != "OPENAI_API_KEY"}, tmp_path)
    assert code == 2 and message["success"] is False
