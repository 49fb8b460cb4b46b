"""How to reach a surface: its key, its base URL and the HTTP client (timeouts, egress proxy) to use."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2

from bentham_executor.answers import NETWORK_ERROR, PROXY_ERROR, TIMEOUT, SurfaceFailure


@dataclass(frozen=True)
class Connection:
    """A surface's endpoint for one call: `timeout_s` is the time left in the query's budget."""

    api_key: str
    base_url: str | None
    http_client: httpx2.Client
    timeout_s: float
    connect_timeout_s: float
    proxied: bool = False

    @property
    def timeout(self) -> httpx2.Timeout:
        """The SDK's timeout: the whole budget for reading, the connection timeout for connecting."""
        return httpx2.Timeout(self.timeout_s, connect=min(self.connect_timeout_s, self.timeout_s))

    def stainless_client_options(self) -> dict[str, Any]:
        """The constructor options of the OpenAI and Anthropic SDKs (the same generator makes both)."""
        return {
            "api_key": self.api_key,
            "base_url": self.base_url,
            "http_client": self.http_client,
            "timeout": self.timeout,
            "max_retries": 0,  # the executor retries, within the query's time (run.py)
        }


def http_client(*, proxy: str | None, timeout_s: float, connect_timeout_s: float) -> httpx2.Client:
    """The client every SDK sends through: `proxy` (the location's egress) when there is one."""
    return httpx2.Client(
        proxy=proxy,
        timeout=httpx2.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
        follow_redirects=True,
    )


def transport_failure(error: BaseException, connection: Connection) -> SurfaceFailure | None:
    """The failure of a call that never got an HTTP answer (timeout, refused connection, proxy), or None."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, httpx2.HTTPError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, httpx2.TimeoutException) or "timed out" in str(error).lower():
        return SurfaceFailure(TIMEOUT, f"no answer within {connection.timeout_s:.1f} s: {error}")
    if _caused_by(error, ssl.SSLCertVerificationError):  # through a proxy too: the tunnel is not at fault
        return SurfaceFailure(
            NETWORK_ERROR,
            f"the surface's TLS certificate is not trusted (a private CA goes in SSL_CERT_FILE): {cause or error}",
        )
    if isinstance(cause, httpx2.ProxyError) or (connection.proxied and isinstance(cause, httpx2.ConnectError)):
        return SurfaceFailure(PROXY_ERROR, f"the location's proxy failed: {cause}")
    if isinstance(cause, httpx2.TransportError):
        return SurfaceFailure(NETWORK_ERROR, f"could not reach the surface: {cause}")
    return None


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def now() -> datetime:
    """The wall clock, for HTTP dates in Retry-After."""
    return datetime.now(UTC)
