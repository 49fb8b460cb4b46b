"""Fixtures of the executor's tests: a local service speaking an API's wire format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.executor.servers import WireService


@pytest.fixture
def service() -> Iterator[WireService]:
    """A local HTTP service, scripted by the test, that the SDK under test is pointed at."""
    with WireService().running() as running:
        yield running
