"""The operator's entry point for a Study's spec: accept it (with warnings) or say what is wrong.

The API server already enforces the schema and the CEL rules, so a spec that reaches the
operator is almost always valid. This is the last layer, for what neither can judge (the
deadline must be in the future when the study is created) and for anything that slipped past
them (a CRD installed without its rules, an object stored before a rule existed). It never
raises: every input, however malformed, yields `Valid` or `Invalid`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bentham.api.manifest import Manifest
from bentham.api.rules import RULE_ERROR_TYPE
from bentham.api.spec import StudySpec

CELL_COUNT_WARNING = 10_000
SHORT_DEADLINE = timedelta(hours=1)
SHORT_LEGAL_HOLD_DAYS = 365


@dataclass(frozen=True)
class Valid:
    spec: StudySpec
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Invalid:
    errors: list[str]
    """Each names the field (a dotted path under spec) and the rule it breaks."""
    reason: str = "InvalidSpec"
    """A CamelCase reason for the condition and the Event."""


def validate_spec(raw: Any, *, created_at: datetime, now: datetime) -> Valid | Invalid:
    """Judges a Study's raw spec as the operator sees it.

    `created_at` is the Study's creation time: the deadline must lie after it. `now` decides the
    warnings that depend on time (a deadline less than an hour away).
    """
    judged = read_spec(raw, created_at=created_at)
    if isinstance(judged, Invalid):
        return judged
    return Valid(spec=judged, warnings=manifest_warnings(judged.manifest, now=now))


def read_spec(raw: Any, *, created_at: datetime) -> StudySpec | Invalid:
    """`validate_spec` but for the warnings: what does not depend on the time now, so it may be kept."""
    try:
        spec = StudySpec.model_validate(raw)
    except ValidationError as error:
        return Invalid(errors=[message for e in error.errors() for message in describe(e)])
    except (TypeError, ValueError, RecursionError) as error:  # pragma: no cover - pydantic wraps these
        return Invalid(errors=[f"spec: {error}"])

    deadline = spec.manifest.deadline
    if deadline is not None:
        if deadline.tzinfo is None:
            return Invalid(errors=["manifest.deadline: must carry a time zone (RFC 3339), e.g. 2030-01-01T00:00:00Z"])
        if deadline <= created_at:
            return Invalid(
                errors=[
                    "manifest.deadline: must be in the future when the study is created "
                    f"({deadline.isoformat()} is not after {created_at.isoformat()})"
                ],
                reason="DeadlineInPast",
            )
    return spec


def manifest_warnings(manifest: Manifest, *, now: datetime) -> list[str]:
    """What the manifest allows but a person should hear about."""
    warnings = []
    deadline = manifest.deadline
    if deadline is not None and deadline.tzinfo is not None and deadline - now < SHORT_DEADLINE:
        warnings.append("manifest.deadline: less than 1 hour away")
    if manifest.completionCriteria.requiredSurfaces.coverageThreshold == 1:
        warnings.append(
            "manifest.completionCriteria.requiredSurfaces.coverageThreshold: "
            "1 means a single failed cell fails the study"
        )
    if manifest.cell_count > CELL_COUNT_WARNING:
        warnings.append(f"manifest: {manifest.cell_count} cells is more than {CELL_COUNT_WARNING:,}")
    warnings.extend(_required_flag_disagreements(manifest))
    warnings.extend(
        f"manifest.locations[{position}].sessionDuration: {location.sessionDuration} minutes but requireSticky "
        "is false, so the exit IP may change within the session"
        for position, location in enumerate(manifest.locations)
        if location.sessionDuration and not location.requireSticky
    )
    if manifest.completionCriteria.maxRetriesPerCell == 1:
        warnings.append("manifest.completionCriteria.maxRetriesPerCell: 1 means one attempt per cell and no retry")
    if (
        manifest.legalHold
        and manifest.retentionDays is not None
        and not manifest.preserveForever
        and manifest.retentionDays < SHORT_LEGAL_HOLD_DAYS
    ):
        warnings.append(f"manifest.retentionDays: legal hold with retention under {SHORT_LEGAL_HOLD_DAYS} days")
    return warnings


def describe(error: Any) -> list[str]:
    """One pydantic error as `field.path: message` lines, with list indexes in brackets.

    A model's broken cross-field rules come as one error; each becomes a line of its own that
    points at the rule's field, as the API server's message for the same rule does.
    """
    path = ""
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    if error.get("type") == RULE_ERROR_TYPE:
        return [f"{(path + field).lstrip('.')}: {text}" for field, text in error["ctx"]["broken"]]
    # pydantic prefixes the message of a ValueError raised in a validator with "Value error, ".
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return [f"{path}: {message}" if path else message]


def _required_flag_disagreements(manifest: Manifest) -> list[str]:
    """A warning for each surface whose written `required` flag says otherwise than the lists, which decide.

    Only a flag the tenant wrote counts: its default (true) on an optional surface is no claim.
    """
    required = set(manifest.required_surface_ids)
    warnings = []
    for position, surface in enumerate(manifest.surfaces):
        listed = surface.id in required
        if "required" in surface.model_fields_set and surface.required != listed:
            where = (
                "is listed in completionCriteria.requiredSurfaces.surfaceIds"
                if listed
                else "is not listed in completionCriteria.requiredSurfaces.surfaceIds"
            )
            warnings.append(
                f"manifest.surfaces[{position}].required is {str(surface.required).lower()} but {surface.id.value} "
                f"{where}: the list decides, the surface is {'required' if listed else 'optional'}"
            )
    return warnings
