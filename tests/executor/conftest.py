"""Fixtures of the executor's tests: a local service speaking an API's wire format."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from tests.executor.servers import WireService, free_port


@pytest.fixture
def service() -> Iterator[WireService]:
    """A local HTTP service, scripted by the test, that the SDK under test is pointed at."""
    with WireService().running() as running:
        yield running


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-speaking server (moto's server mode), at this URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
