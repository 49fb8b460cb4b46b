"""The admin's allowance for webhooks beyond public addresses: read from the environment, checked at start."""

from __future__ import annotations

import ipaddress

import pytest

from bentham.__main__ import main
from bentham.controller.config import OperatorConfig


def test_by_default_webhooks_may_reach_no_address_that_is_not_public(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENTHAM_WEBHOOK_ALLOWED_CIDRS", raising=False)

    assert OperatorConfig.from_environment().webhook_allowed_networks() == ()


def test_the_allowed_cidrs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENTHAM_WEBHOOK_ALLOWED_CIDRS", "10.96.0.0/12,fd00::/8")

    assert OperatorConfig.from_environment().webhook_allowed_networks() == (
        ipaddress.ip_network("10.96.0.0/12"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_the_operator_does_not_start_with_an_allowed_cidr_it_cannot_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BENTHAM_PRICING_FILE", raising=False)
    monkeypatch.setenv("BENTHAM_WEBHOOK_ALLOWED_CIDRS", "127.0.0.0/8,cluster-services")

    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "BENTHAM_WEBHOOK_ALLOWED_CIDRS: 'cluster-services' is not a CIDR" in capsys.readouterr().err
