"""The Study API's names: its group, version, kind and plural, in one place for every caller."""

from __future__ import annotations

GROUP = "bentham.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Study"
PLURAL = "studies"
