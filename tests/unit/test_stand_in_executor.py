"""The stand-in executor (executor/stand-in/stand_in_executor.py), judged by the operator's own result reader.

The end-to-end tests run it as a real container; here its script runs in a plain process, writing
its termination message to a file, so each behaviour's result is pinned without a cluster.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bentham.api.manifest import EvidenceLevel, QualityGates
from bentham.core.results import PASSED, CellResult, Verdict, judge_result, read_result

SCRIPT = Path(__file__).resolve().parents[2] / "executor" / "stand-in" / "stand_in_executor.py"


def run(tmp_path: Path, attempt: int, **env: str) -> tuple[int, str | None]:
    message = tmp_path / "termination-log"
    message.unlink(missing_ok=True)
    variables = {
        "STAND_IN_RESULT_PATH": str(message),
        "BENTHAM_STUDY": "s",
        "BENTHAM_CELL": "q0-openai-api-us-nyc",
        "BENTHAM_ATTEMPT": str(attempt),
        "BENTHAM_QUERY_TEXT": "best running shoes",
        "BENTHAM_SURFACE": "openai-api",
        "BENTHAM_LOCATION": "us-nyc",
        **env,
    }
    done = subprocess.run([sys.executable, str(SCRIPT)], env=variables, capture_output=True, timeout=30)
    return done.returncode, message.read_text() if message.exists() else None


def verdict(message: str | None) -> Verdict:
    result = read_result(message)
    if isinstance(result, CellResult):
        return judge_result(result, QualityGates(), EvidenceLevel.FULL)
    return result


def test_by_default_it_passes_every_gate_even_with_full_evidence(tmp_path: Path) -> None:
    code, message = run(tmp_path, 1)
    assert code == 0
    assert verdict(message) == PASSED


@pytest.mark.parametrize(
    ("behaviour", "exit_code", "reason"),
    [("fail", 1, "ExecutorError"), ("nothing", 0, "MissingResult")],
)
def test_each_misbehaviour_is_judged_as_the_executor_contract_says(
    tmp_path: Path, behaviour: str, exit_code: int, reason: str
) -> None:
    code, message = run(tmp_path, 1, STAND_IN_BEHAVIOUR=behaviour)
    assert code == exit_code
    judged = verdict(message)
    assert (judged.passed, judged.reason, judged.retryable) == (False, reason, True)


def test_it_misbehaves_only_on_the_first_attempts_it_is_told(tmp_path: Path) -> None:
    told = {"STAND_IN_BEHAVIOUR": "fail", "STAND_IN_MISBEHAVE_ATTEMPTS": "2"}
    assert [run(tmp_path, attempt, **told)[0] for attempt in (1, 2, 3)] == [1, 1, 0]
    assert verdict(run(tmp_path, 3, **told)[1]) == PASSED
