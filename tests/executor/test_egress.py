"""Per-location egress: each SDK's calls go through the proxy the admin's map names for the cell's location."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from bentham_executor.run import EXIT_MISCONFIGURED, run_attempt
from tests.executor.dialects import DIALECTS, OPENAI, Dialect
from tests.executor.helpers import env_for
from tests.executor.servers import RecordingProxy, WireService, free_port, self_signed_certificate

LOCATIONS = ("us-nyc", "uk-lon")


@pytest.fixture
def proxies() -> Iterator[tuple[dict[str, str], list[tuple[str, str, str]]]]:
    """One recording proxy per location: the map an admin would mount, and the log of who came through."""
    log: list[tuple[str, str, str]] = []
    with ExitStack() as stack:
        urls = {name: stack.enter_context(RecordingProxy(name, log).running()).url for name in LOCATIONS}
        yield urls, log


def map_file(tmp_path: Path, entries: dict[str, str]) -> str:
    path = tmp_path / "proxies.yaml"
    path.write_text(yaml.safe_dump(entries))
    return str(path)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.surface)
def test_each_cell_asks_through_its_own_locations_proxy(
    dialect: Dialect,
    service: WireService,
    tmp_path: Path,
    proxies: tuple[dict[str, str], list[tuple[str, str, str]]],
) -> None:
    urls, log = proxies
    service.script(dialect.good())
    mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, urls)}]
    target = service.url.removeprefix("http://")

    # Cells 0 and 1 of a one-query study over two locations: us-nyc, then uk-lon.
    for cell in (0, 1):
        outcome = run_attempt(
            env_for(dialect, service.url, tmp_path, locations=LOCATIONS, env=mapping, cell_index=cell)
        )
        assert outcome.result.success, outcome.result.error

    assert [(name, host) for name, host, _ in log] == [("us-nyc", target), ("uk-lon", target)]
    assert len(service.received) == 2


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.surface)
def test_an_https_surface_is_asked_through_a_connect_tunnel_of_the_locations_proxy(
    dialect: Dialect,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    proxies: tuple[dict[str, str], list[tuple[str, str, str]]],
) -> None:
    """The real services are HTTPS: the SDK opens a CONNECT tunnel through the proxy and speaks TLS inside it."""
    urls, log = proxies
    certificate, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # the client trusts the local service, as a CA bundle would
    with WireService().serve_tls(certificate, key).running() as service:
        service.script(dialect.good())
        mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, urls)}]
        target = service.url.removeprefix("https://")

        outcome = run_attempt(env_for(dialect, service.url, tmp_path, locations=LOCATIONS, env=mapping, cell_index=1))

        assert outcome.result.success, outcome.result.error
        assert log == [("uk-lon", target, "CONNECT")], "one tunnel, through the cell's location; the path stays secret"
        assert len(service.received) == 1, "the request went through the tunnel, once"


def test_an_https_service_the_client_does_not_trust_is_a_network_error_not_an_answer(
    tmp_path: Path, proxies: tuple[dict[str, str], list[tuple[str, str, str]]]
) -> None:
    urls, log = proxies
    certificate, key = self_signed_certificate(tmp_path)
    with WireService().serve_tls(certificate, key).running() as service:
        service.script(OPENAI.good())
        mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, urls)}]

        outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, locations=LOCATIONS, env=mapping))

    error = outcome.result.error
    assert error is not None and error.code == "NETWORK_ERROR" and error.retryable, error
    assert "TLS certificate is not trusted" in error.message and "CERTIFICATE_VERIFY_FAILED" in error.message
    assert [(name, kind) for name, _, kind in log] == [("us-nyc", "CONNECT")] * len(log) and log
    assert service.received == [], "nothing was sent over a connection the client could not verify"


def test_a_location_the_map_does_not_name_is_refused_rather_than_asked_from_elsewhere(
    service: WireService, tmp_path: Path, proxies: tuple[dict[str, str], list[tuple[str, str, str]]]
) -> None:
    urls, log = proxies
    service.script(OPENAI.good())
    mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, {"us-nyc": urls["us-nyc"]})}]

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, locations=LOCATIONS, env=mapping, cell_index=1))

    error = outcome.result.error
    assert error is not None and error.code == "PROXY_NOT_CONFIGURED" and not error.retryable
    assert "uk-lon" in error.message
    assert outcome.exit_code == EXIT_MISCONFIGURED
    assert log == [] and service.received == []


def test_a_proxy_that_is_down_is_a_retryable_proxy_error(service: WireService, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    service.script(OPENAI.good())
    mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, {"us-nyc": closed})}]

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, env=mapping))

    error = outcome.result.error
    assert error is not None and error.code == "PROXY_ERROR" and error.retryable
    assert service.received == []


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"mars-base": "http://proxy:3128"}, "'mars-base' is not a location id"),
        ({"us-nyc": "socks5://proxy:1080"}, "us-nyc must be an http:// or https:// proxy URL"),
    ],
)
def test_a_proxy_map_that_cannot_be_used_names_the_entry_at_fault(
    entries: dict[str, str], problem: str, service: WireService, tmp_path: Path
) -> None:
    service.script(OPENAI.good())
    mapping = [{"name": "BENTHAM_PROXY_MAP_FILE", "value": map_file(tmp_path, entries)}]

    outcome = run_attempt(env_for(OPENAI, service.url, tmp_path, env=mapping))

    error = outcome.result.error
    assert error is not None and error.code == "EXECUTOR_MISCONFIGURED" and problem in error.message
    assert outcome.exit_code == EXIT_MISCONFIGURED


def test_the_proxy_map_may_come_whole_from_a_secrets_key(
    service: WireService, tmp_path: Path, proxies: tuple[dict[str, str], list[tuple[str, str, str]]]
) -> None:
    urls, log = proxies
    service.script(OPENAI.good())
    keys = "proxy-map"
    env = env_for(
        OPENAI,
        service.url,
        tmp_path,
        locations=LOCATIONS,
        cell_index=1,
        env=[{"name": "BENTHAM_PROXY_MAP", "valueFrom": {"secretKeyRef": {"name": "api-keys", "key": keys}}}],
        secrets={"api-keys": {"key": "sk-test", keys: yaml.safe_dump(urls)}},
    )

    outcome = run_attempt(env)

    assert outcome.result.success, outcome.result.error
    assert [name for name, _, _ in log] == ["uk-lon"]
