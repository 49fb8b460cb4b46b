"""Per-location egress: the operator admin's map of location ids to HTTP(S) proxies.

The map is YAML (or JSON) of `location-id: proxy URL`, given whole in `BENTHAM_PROXY_MAP` (from a
Secret's key through `valueFrom.secretKeyRef`, since proxy URLs carry credentials) or as a file
named by `BENTHAM_PROXY_MAP_FILE` (a mounted Secret). With a map, every call of a cell goes through
its location's proxy, so a study over ten locations asks from ten places; a location the map does
not name is refused rather than asked from the wrong place. Without a map, API surfaces answer
from wherever the pod runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from bentham.api.manifest import LocationId
from bentham_executor.attempt import ConfigurationError

PROXY_MAP_VARIABLE = "BENTHAM_PROXY_MAP"
PROXY_MAP_FILE_VARIABLE = "BENTHAM_PROXY_MAP_FILE"
_SCHEMES = ("http", "https")


class LocationNotMapped(LookupError):
    """The proxy map exists but does not name the cell's location."""


def read_proxy_map(env: Mapping[str, str]) -> dict[str, str] | None:
    """The admin's proxy map, or None when there is none; raises `ConfigurationError` naming the entry at fault."""
    inline, path = env.get(PROXY_MAP_VARIABLE), env.get(PROXY_MAP_FILE_VARIABLE)
    if inline and path:
        raise ConfigurationError(f"set {PROXY_MAP_VARIABLE} or {PROXY_MAP_FILE_VARIABLE}, not both")
    if path:
        source = f"{PROXY_MAP_FILE_VARIABLE}: {path}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigurationError(f"{source}: cannot be read: {error.strerror}") from None
    elif inline:
        source, text = PROXY_MAP_VARIABLE, inline
    else:
        return None
    try:
        entries = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigurationError(f"{source} is not YAML: {error}") from None
    if not isinstance(entries, dict):
        raise ConfigurationError(f"{source} must map location ids to proxy URLs")
    known = {location.value for location in LocationId}
    proxies: dict[str, str] = {}
    for location, url in entries.items():
        if location not in known:
            raise ConfigurationError(f"{source}: {location!r} is not a location id")
        if not isinstance(url, str) or urlsplit(url).scheme not in _SCHEMES or not urlsplit(url).hostname:
            raise ConfigurationError(f"{source}: {location} must be an http:// or https:// proxy URL")
        proxies[location] = url
    return proxies


def proxy_for(location: str, proxies: Mapping[str, str] | None) -> str | None:
    """The proxy of `location` (None: no map, direct egress); raises `LocationNotMapped` when the map lacks it."""
    if proxies is None:
        return None
    try:
        return proxies[location]
    except KeyError:
        raise LocationNotMapped(
            f"the proxy map names no proxy for {location}: asking without one would answer from the wrong place"
        ) from None


def redacted(url: str) -> str:
    """A proxy URL without its credentials, for evidence and logs."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
