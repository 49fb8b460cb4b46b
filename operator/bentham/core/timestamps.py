"""RFC 3339 timestamps as the status stores them."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    """Second precision, as Kubernetes writes its own times (`2030-01-01T00:00:00Z`)."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_millis(moment: datetime) -> str:
    """Millisecond precision (`2030-01-01T00:00:00.123Z`), for times the core computes with."""
    utc = as_utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> datetime:
    """The UTC datetime of an RFC 3339 string; raises ValueError when it is not one."""
    return as_utc(datetime.fromisoformat(text))


def read_rfc3339(value: object) -> datetime | None:
    """The UTC datetime of an RFC 3339 string as the API server writes it; None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def truncate_to_millis(moment: datetime) -> datetime:
    """`moment` in UTC without its sub-millisecond part, so it survives `rfc3339_millis`."""
    utc = as_utc(moment)
    return utc.replace(microsecond=utc.microsecond - utc.microsecond % 1000)
