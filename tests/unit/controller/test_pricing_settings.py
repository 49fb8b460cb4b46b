"""The operator's pricing table: the built-in one, or an admin's file laid over it, read once at start."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bentham.__main__ import main
from bentham.api.manifest import SurfaceId
from bentham.controller.config import OperatorConfig
from bentham.core.pricing import PricingInvalid, builtin_pricing


def test_without_a_pricing_file_the_operator_prices_from_the_built_in_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENTHAM_PRICING_FILE", raising=False)

    assert OperatorConfig.from_environment().pricing() == builtin_pricing()


def test_the_pricing_file_is_laid_over_the_built_in_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text("surfaces:\n  grok:\n    defaultModel: grok-3\n    models:\n      grok-3: {requestUsd: 0.004}\n")
    monkeypatch.setenv("BENTHAM_PRICING_FILE", str(path))

    table = OperatorConfig.from_environment().pricing()

    assert table.price_of(SurfaceId.GROK, None).per_request == Decimal("0.004")
    assert table.price_of(SurfaceId.CHATGPT_WEB, None).per_request == Decimal("0.02")


def test_an_unreadable_pricing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PricingInvalid, match="cannot be read"):
        OperatorConfig(pricing_file=str(tmp_path / "absent.yaml")).pricing()


def test_the_operator_does_not_start_with_a_pricing_file_it_cannot_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text("fullEvidenceMultiplier: -1\n")
    monkeypatch.setenv("BENTHAM_PRICING_FILE", str(path))

    with pytest.raises(SystemExit) as exited:
        main([])

    error = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"BENTHAM_PRICING_FILE {path}" in error and "fullEvidenceMultiplier" in error
