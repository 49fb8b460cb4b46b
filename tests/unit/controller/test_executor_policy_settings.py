"""The operator's executor policy: none (the defaults), or an admin's file, read once at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from bentham.__main__ import main
from bentham.controller.config import OperatorConfig
from bentham.core.executor_policy import ExecutorPolicy, ExecutorPolicyInvalid


def test_without_a_policy_file_the_operator_allows_nothing_beyond_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BENTHAM_EXECUTOR_POLICY_FILE", raising=False)

    assert OperatorConfig.from_environment().executor_policy() == ExecutorPolicy()


def test_the_policy_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "executor-policy.yaml"
    path.write_text("namespaces:\n  tenant-a:\n    serviceAccounts: [bentham-executor]\n")
    monkeypatch.setenv("BENTHAM_EXECUTOR_POLICY_FILE", str(path))

    policy = OperatorConfig.from_environment().executor_policy()

    assert policy.allowances("tenant-a").serviceAccounts == ["bentham-executor"]
    assert policy.allowances("tenant-b").serviceAccounts is None


def test_an_unreadable_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ExecutorPolicyInvalid, match="cannot be read"):
        OperatorConfig(executor_policy_file=str(tmp_path / "absent.yaml")).executor_policy()


def test_the_operator_does_not_start_with_a_policy_it_cannot_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "executor-policy.yaml"
    path.write_text("default:\n  maxParallelism: 0\n")
    monkeypatch.setenv("BENTHAM_EXECUTOR_POLICY_FILE", str(path))

    with pytest.raises(SystemExit) as exited:
        main([])

    error = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"BENTHAM_EXECUTOR_POLICY_FILE {path}" in error and "default.maxParallelism" in error
