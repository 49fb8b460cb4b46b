"""`validate_spec` judges anything it is given, and its warnings and verdicts mean what they say."""

from __future__ import annotations

import contextlib
import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bentham.api.manifest import (
    MANIFEST_RULES,
    EvidenceLevel,
    LocationId,
    Manifest,
    ProxyType,
    SessionIsolation,
    SurfaceId,
)
from bentham.api.rules import Rule
from bentham.api.spec import NOTIFICATIONS_RULES, SPEC_RULES, StudySpec
from bentham.api.validation import Invalid, Valid, manifest_warnings, validate_spec
from tests.support import paths

FAST = settings(max_examples=200, deadline=None)
ZONES = [UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))]  # the extreme UTC offsets
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=5)

text = st.text(min_size=1, max_size=30)
dns_label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)


def spec_dict(**manifest: Any) -> dict[str, Any]:
    """A valid spec with the given manifest fields replaced."""
    base: dict[str, Any] = {
        "name": "Warnings",
        "queries": [{"text": "Which bank has the best savings rate?"}],
        "surfaces": [{"id": "openai-api"}, {"id": "grok"}],
        "locations": [{"id": "us-nyc"}],
        "completionCriteria": {"requiredSurfaces": {"surfaceIds": ["openai-api"]}},
    }
    return {"tenantId": "acme", "executor": {"image": "executor:1"}, "manifest": {**base, **manifest}}


# --- Strategies -------------------------------------------------------------------------------


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Valid manifests: every limit and cross-field rule respected, optional fields sometimes set."""
    surface_ids = draw(st.lists(st.sampled_from(list(SurfaceId)), min_size=1, max_size=5, unique=True))
    location_ids = draw(st.lists(st.sampled_from(list(LocationId)), min_size=1, max_size=5, unique=True))
    required = draw(st.lists(st.sampled_from(surface_ids), min_size=1, unique=True))
    rest = [s for s in surface_ids if s not in required]
    optional: list[SurfaceId] = draw(st.lists(st.sampled_from(rest), unique=True)) if rest else []
    surfaces = [
        {
            "id": s.value,
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "required": st.booleans(),
                        "options": st.fixed_dictionaries(
                            {},
                            optional={
                                "model": text,
                                "captureScreenshot": st.booleans(),
                                "captureHtml": st.booleans(),
                                "captureSources": st.booleans(),
                            },
                        ),
                    },
                )
            ),
        }
        for s in surface_ids
    ]
    locations = [
        {
            "id": loc.value,
            **draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "proxyType": st.sampled_from([p.value for p in ProxyType]),
                        "requireSticky": st.booleans(),
                        "country": st.from_regex(r"[A-Z]{2}", fullmatch=True),
                        "region": text,
                        "city": text,
                        "sessionDuration": st.integers(0, 120),
                    },
                )
            ),
        }
        for loc in location_ids
    ]
    queries = draw(
        st.lists(
            st.fixed_dictionaries(
                {"text": text},
                optional={
                    "context": text,
                    "category": text,
                    "tags": st.lists(st.text(min_size=1, max_size=50), max_size=20),
                },
            ),
            min_size=1,
            max_size=4,
        )
    )
    criteria: dict[str, Any] = {"requiredSurfaces": {"surfaceIds": [s.value for s in required]}}
    criteria |= draw(st.fixed_dictionaries({}, optional={"maxRetriesPerCell": st.integers(1, 10)}))
    if draw(st.booleans()):
        criteria["requiredSurfaces"]["coverageThreshold"] = draw(st.floats(0, 1))
    if bool(optional) or draw(st.booleans()):
        criteria["optionalSurfaces"] = {"surfaceIds": [s.value for s in optional]}
    manifest: dict[str, Any] = {
        "name": draw(st.text(min_size=1, max_size=200)),
        "queries": queries,
        "surfaces": surfaces,
        "locations": locations,
        "completionCriteria": criteria,
    }
    manifest |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "version": st.just("1.0"),
                "description": st.text(max_size=100),
                "qualityGates": st.fixed_dictionaries(
                    {}, optional={"minResponseLength": st.integers(0, 10_000), "requireActualContent": st.booleans()}
                ),
                "evidenceLevel": st.sampled_from([e.value for e in EvidenceLevel]),
                "deadline": st.datetimes(
                    min_value=datetime(2026, 6, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
                ).map(lambda d: d.isoformat()),
                "retentionDays": st.integers(1, 2_555),
                "preserveForever": st.booleans(),
                "sessionIsolation": st.sampled_from([s.value for s in SessionIsolation]),
            },
        )
    )
    if draw(st.booleans()):
        manifest["legalHold"] = True
        if "retentionDays" not in manifest and not manifest.get("preserveForever"):
            manifest["retentionDays"] = draw(st.integers(1, 2_555))
    return manifest


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """Valid StudySpec dicts."""
    parallelism = draw(st.integers(1, 1_000))
    executor: dict[str, Any] = {"image": draw(text), "parallelism": parallelism}
    executor |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "maxParallelism": st.integers(parallelism, 1_000),
                "imagePullPolicy": st.sampled_from(["Always", "IfNotPresent", "Never"]),
                "args": st.lists(st.text(max_size=20), max_size=3),
                "env": st.lists(
                    st.fixed_dictionaries({"name": text}, optional={"value": st.text(max_size=20)}), max_size=3
                ),
                "podAnnotations": st.dictionaries(text, st.text(max_size=20), max_size=3),
                "tolerations": st.lists(
                    st.fixed_dictionaries({"key": text, "operator": st.just("Exists")}), max_size=2
                ),
                "attemptTimeoutSeconds": st.integers(10, 86_400),
            },
        )
    )
    spec: dict[str, Any] = {"tenantId": draw(dns_label), "manifest": draw(manifests()), "executor": executor}
    spec |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "paused": st.booleans(),
                "cancel": st.fixed_dictionaries({"reason": text}),
                "notifications": st.one_of(
                    st.fixed_dictionaries({"webhookUrl": st.sampled_from(["https://hooks.example/a", "http://h/b"])}),
                    st.fixed_dictionaries({"secretRef": st.fixed_dictionaries({"name": text})}),
                ),
            },
        )
    )
    return spec


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec with one value replaced by any JSON value, deleted, or a random key added."""
    spec = draw(specs())
    where = draw(st.sampled_from([p for p in paths(spec) if p]))
    parent: Any = spec
    for step in where[:-1]:
        parent = parent[step]
    operation = draw(st.sampled_from(["replace", "delete", "add"]))
    if operation == "replace":
        parent[where[-1]] = draw(json_values)
    elif operation == "delete" or not isinstance(parent[where[-1]], dict):
        del parent[where[-1]]
    else:
        parent[where[-1]][draw(st.text(max_size=10))] = draw(json_values)
    return spec


wrong_shapes = st.one_of(
    json_values,
    # The right keys, values of any shape.
    st.fixed_dictionaries({"tenantId": json_values, "manifest": json_values, "executor": json_values}),
    st.fixed_dictionaries(
        {
            "tenantId": st.just("acme"),
            "executor": st.just({"image": "x"}),
            "manifest": st.fixed_dictionaries(
                {key: json_values for key in ("name", "queries", "surfaces", "locations", "completionCriteria")},
                optional={key: json_values for key in ("deadline", "legalHold", "retentionDays", "qualityGates")},
            ),
        }
    ),
)

# A spec field, then more path (`.name`, `[0]`, or a map key as given, which may be any string)
# and `: ` before a message.
FIELD_PATH = re.compile(rf"^({'|'.join(StudySpec.model_fields)})([.\[].*)?: \S", re.DOTALL)


def assert_well_formed(verdict: Valid | Invalid) -> None:
    """Every error names its field (`manifest.queries[0].text: ...`) or is a whole sentence."""
    assert isinstance(verdict, Valid | Invalid)
    if isinstance(verdict, Valid):
        return
    assert verdict.errors and verdict.reason in ("InvalidSpec", "DeadlineInPast")
    for error in verdict.errors:
        assert isinstance(error, str) and "Value error" not in error, error
        names_a_field = bool(FIELD_PATH.match(error))
        # Extra keys are echoed as they were given, which may be any string.
        extra_key = error.endswith(": Extra inputs are not permitted")
        sentence = error[:1].isupper() and ": " not in error[:40]
        assert names_a_field or extra_key or sentence, error


# --- Properties -------------------------------------------------------------------------------


@FAST
@given(specs())
def test_valid_specs_are_valid_and_round_trip(spec: dict[str, Any]) -> None:
    model = StudySpec.model_validate(spec)
    verdict = validate_spec(spec, created_at=CREATED, now=NOW)

    assert isinstance(verdict, Valid), verdict
    assert verdict.spec == model
    assert StudySpec.model_validate(model.model_dump(mode="json", exclude_none=True)) == model
    surfaces = [s.id for s in model.manifest.surfaces]
    required = model.manifest.required_surface_ids
    listed = set(model.manifest.completionCriteria.requiredSurfaces.surfaceIds)
    assert listed <= set(required) <= set(surfaces)
    assert not set(required) & set(model.manifest.optional_surface_ids)


@FAST
@given(mutated_specs())
def test_mutated_specs_yield_a_verdict_never_an_exception(spec: dict[str, Any]) -> None:
    with contextlib.suppress(ValidationError):  # the only exception allowed out
        StudySpec.model_validate(copy.deepcopy(spec))
    assert_well_formed(validate_spec(spec, created_at=CREATED, now=NOW))


@FAST
@given(wrong_shapes)
def test_values_of_the_wrong_shape_are_invalid(raw: Any) -> None:
    with pytest.raises(ValidationError):
        StudySpec.model_validate(raw)
    verdict = validate_spec(raw, created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid)
    assert verdict.reason == "InvalidSpec"
    assert_well_formed(verdict)


@FAST
@given(
    st.datetimes(timezones=st.sampled_from(ZONES)),
    st.datetimes(timezones=st.just(UTC)),
)
def test_any_aware_deadline_gets_a_verdict(deadline: datetime, created_at: datetime) -> None:
    # Extreme dates and offsets (year 1, year 9999) must not overflow the comparisons.
    verdict = validate_spec(spec_dict(deadline=deadline.isoformat()), created_at=created_at, now=created_at)

    if deadline > created_at:
        assert isinstance(verdict, Valid)
    else:
        assert isinstance(verdict, Invalid) and verdict.reason == "DeadlineInPast"


# --- Deadline ---------------------------------------------------------------------------------


def test_deadline_in_the_past_is_invalid_with_its_own_reason() -> None:
    verdict = validate_spec(spec_dict(deadline="2026-06-01T11:00:00Z"), created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid)
    assert verdict.reason == "DeadlineInPast"
    assert verdict.errors[0].startswith("manifest.deadline: must be in the future")


def test_deadline_equal_to_creation_time_is_in_the_past() -> None:
    verdict = validate_spec(spec_dict(deadline=CREATED.isoformat()), created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid) and verdict.reason == "DeadlineInPast"


def test_deadline_is_judged_against_creation_not_now() -> None:
    # A study created before its deadline stays valid when re-validated after the deadline passed.
    verdict = validate_spec(spec_dict(deadline="2026-06-01T11:58:00Z"), created_at=CREATED, now=NOW)

    assert isinstance(verdict, Valid)


def test_deadline_without_time_zone_is_invalid() -> None:
    verdict = validate_spec(spec_dict(deadline="2030-01-01T00:00:00"), created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid)
    assert verdict.reason == "InvalidSpec"
    assert verdict.errors == ["manifest.deadline: must carry a time zone (RFC 3339), e.g. 2030-01-01T00:00:00Z"]


# --- Warnings ---------------------------------------------------------------------------------


def warnings_of(spec: dict[str, Any]) -> list[str]:
    verdict = validate_spec(spec, created_at=CREATED, now=NOW)
    assert isinstance(verdict, Valid), verdict
    return verdict.warnings


def test_a_plain_spec_has_no_warnings() -> None:
    assert warnings_of(spec_dict(deadline="2026-06-02T12:00:00Z")) == []


def test_deadline_under_an_hour_away_warns() -> None:
    warnings = warnings_of(spec_dict(deadline="2026-06-01T12:59:00Z"))
    assert warnings == ["manifest.deadline: less than 1 hour away"]
    assert warnings_of(spec_dict(deadline="2026-06-01T13:00:00Z")) == []


def test_coverage_threshold_of_one_warns() -> None:
    criteria = {"requiredSurfaces": {"surfaceIds": ["openai-api"], "coverageThreshold": 1}}
    assert warnings_of(spec_dict(completionCriteria=criteria)) == [
        "manifest.completionCriteria.requiredSurfaces.coverageThreshold: 1 means a single failed cell fails the study"
    ]
    criteria["requiredSurfaces"]["coverageThreshold"] = 0.99
    assert warnings_of(spec_dict(completionCriteria=criteria)) == []


def test_more_than_ten_thousand_cells_warns() -> None:
    surfaces = [{"id": s.value} for s in list(SurfaceId)[:10]]
    locations = [{"id": "us-nyc"}]
    queries = [{"text": f"Question {i}?"} for i in range(1_000)]  # 10,000 cells: no warning yet
    assert warnings_of(spec_dict(queries=queries, surfaces=surfaces, locations=locations)) == []

    locations.append({"id": "uk-lon"})
    warnings = warnings_of(spec_dict(queries=queries, surfaces=surfaces, locations=locations))
    assert warnings == ["manifest: 20000 cells is more than 10,000"]


def test_one_attempt_per_cell_warns() -> None:
    criteria = {"requiredSurfaces": {"surfaceIds": ["openai-api"]}, "maxRetriesPerCell": 1}
    assert warnings_of(spec_dict(completionCriteria=criteria)) == [
        "manifest.completionCriteria.maxRetriesPerCell: 1 means one attempt per cell and no retry"
    ]
    criteria["maxRetriesPerCell"] = 2
    assert warnings_of(spec_dict(completionCriteria=criteria)) == []


def test_legal_hold_under_a_year_warns() -> None:
    warning = "manifest.retentionDays: legal hold with retention under 365 days"
    assert warnings_of(spec_dict(legalHold=True, retentionDays=364)) == [warning]
    assert warnings_of(spec_dict(legalHold=True, retentionDays=365)) == []
    assert warnings_of(spec_dict(legalHold=True, retentionDays=30, preserveForever=True)) == []
    assert warnings_of(spec_dict(legalHold=False, retentionDays=30)) == []


def test_every_warning_is_reported_at_once() -> None:
    criteria = {
        "requiredSurfaces": {"surfaceIds": ["openai-api"], "coverageThreshold": 1},
        "maxRetriesPerCell": 1,
    }
    spec = spec_dict(completionCriteria=criteria, legalHold=True, retentionDays=7, deadline="2026-06-01T12:30:00Z")

    assert [w.split(":")[0] for w in warnings_of(spec)] == [
        "manifest.deadline",
        "manifest.completionCriteria.requiredSurfaces.coverageThreshold",
        "manifest.completionCriteria.maxRetriesPerCell",
        "manifest.retentionDays",
    ]


# --- Cross-field rules ------------------------------------------------------------------------


def test_each_broken_rule_is_its_own_error_at_its_own_field() -> None:
    spec = spec_dict(
        surfaces=[{"id": "openai-api"}, {"id": "openai-api"}], locations=[{"id": "de-ber"}] * 2, legalHold=True
    )

    verdict = validate_spec(spec, created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid)
    assert verdict.errors == [
        "manifest.surfaces: each surface id may appear only once",
        "manifest.locations: each location id may appear only once",
        "manifest.legalHold: a study under legal hold needs retentionDays or preserveForever: true",
    ]


def test_notifications_rule_points_at_notifications() -> None:
    spec = {**spec_dict(), "notifications": {}}

    verdict = validate_spec(spec, created_at=CREATED, now=NOW)

    assert isinstance(verdict, Invalid)
    assert verdict.errors == ["notifications.webhookUrl: set exactly one of webhookUrl or secretRef"]


ALL_RULES: list[Rule[Any]] = [*MANIFEST_RULES, *NOTIFICATIONS_RULES, *SPEC_RULES]


@pytest.mark.parametrize("rule", ALL_RULES, ids=[r.message.split(":")[0] + r.field for r in ALL_RULES])
def test_rule_message_starts_with_a_label_the_error_path_replaces(rule: Rule[Any]) -> None:
    label, _, rest = rule.message.partition(": ")
    assert re.fullmatch(r"[A-Za-z.]+", label) and rest, rule.message
    assert rule.text == rest
    assert rule.field.startswith(".")


def test_manifest_alone_reports_every_broken_rule() -> None:
    manifest = spec_dict(surfaces=[{"id": "grok"}, {"id": "grok"}])["manifest"]

    with pytest.raises(ValidationError) as raised:
        Manifest.model_validate(manifest)

    (error,) = raised.value.errors()
    assert error["msg"] == (
        "surfaces: each surface id may appear only once; "
        "completionCriteria.requiredSurfaces.surfaceIds: every id must also be listed in surfaces"
    )


# --- Which surfaces are required --------------------------------------------------------------


def manifest_of(surfaces: list[dict[str, Any]], required: list[str], optional: list[str] | None) -> Manifest:
    criteria: dict[str, Any] = {"requiredSurfaces": {"surfaceIds": required}}
    if optional is not None:
        criteria["optionalSurfaces"] = {"surfaceIds": optional}
    return StudySpec.model_validate(spec_dict(surfaces=surfaces, completionCriteria=criteria)).manifest


def test_surface_listed_as_required_is_required_whatever_its_flag() -> None:
    manifest = manifest_of([{"id": "openai-api", "required": False}], ["openai-api"], None)

    assert manifest.required_surface_ids == [SurfaceId.OPENAI_API]


def test_surface_listed_as_optional_is_optional_whatever_its_flag() -> None:
    manifest = manifest_of([{"id": "openai-api"}, {"id": "grok", "required": True}], ["openai-api"], ["grok"])

    assert manifest.required_surface_ids == [SurfaceId.OPENAI_API]
    assert manifest.optional_surface_ids == [SurfaceId.GROK]


def test_only_the_required_list_makes_a_surface_required() -> None:
    surfaces: list[dict[str, Any]] = [
        {"id": "meta-ai"},
        {"id": "openai-api"},
        {"id": "grok", "required": False},
        {"id": "claude-web", "required": True},
    ]

    manifest = manifest_of(surfaces, ["openai-api"], [])

    # As in the original: surfaces[].required decides nothing; a surface in neither list is optional.
    assert manifest.required_surface_ids == [SurfaceId.OPENAI_API]


def test_a_required_flag_that_disagrees_with_the_lists_gets_a_warning_naming_both() -> None:
    surfaces: list[dict[str, Any]] = [
        {"id": "openai-api", "required": False},
        {"id": "grok", "required": True},
        {"id": "claude-web", "required": False},
        {"id": "meta-ai"},  # the default flag is no claim: no warning
    ]
    spec = StudySpec.model_validate(
        spec_dict(surfaces=surfaces, completionCriteria={"requiredSurfaces": {"surfaceIds": ["openai-api"]}})
    )

    warnings = manifest_warnings(spec.manifest, now=datetime(2030, 1, 1, tzinfo=UTC))

    flagged = [w for w in warnings if ".required is" in w]
    assert flagged == [
        "manifest.surfaces[0].required is false but openai-api is listed in "
        "completionCriteria.requiredSurfaces.surfaceIds: the list decides, the surface is required",
        "manifest.surfaces[1].required is true but grok is not listed in "
        "completionCriteria.requiredSurfaces.surfaceIds: the list decides, the surface is optional",
    ]
