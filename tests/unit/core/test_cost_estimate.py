"""The cost estimate (core.estimate) against figures worked out by hand, and its pricing table (core.pricing).

Per request, from the built-in table (operator/bentham/core/pricing.yaml), as
inputTokens / 1000 x inputUsdPer1kTokens + outputTokens / 1000 x outputUsdPer1kTokens + requestUsd:

    openai-api    gpt-4o-mini (default)     50/1000 x 0.00015 + 450/1000 x 0.0006             = 0.0002775
    anthropic-api claude-sonnet-4-20250514  50/1000 x 0.003   + 400/1000 x 0.015              = 0.00615
    perplexity-api sonar (default)          50/1000 x 0.001   + 500/1000 x 0.001  + 0.005     = 0.00555
    chatgpt-web   default                   0 + 0 + 0.02                                      = 0.02
    google-ai-api gemini-2.5-pro            50/1000 x 0.00125 + 2000/1000 x 0.005             = 0.0100625
    google-search default                   0                                                 = 0
    grok, or a model a surface does not list: unknownSurfaceRequestUsd                        = 0.01

Then base = sum of (queries x locations x per request), to the cent; x1.2 with a mobile location,
x1.1 with evidenceLevel full; the range is 0.8 and 1.3 times that, each to the cent (halves up).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from core_builders import T0, UID, Study, at, make_spec

from bentham.api.manifest import Manifest, SurfaceId
from bentham.api.spec import StudySpec
from bentham.api.status import CostEstimate
from bentham.core import decide
from bentham.core.estimate import estimate_cost
from bentham.core.pricing import PricingInvalid, builtin_pricing, pricing_with_overrides


def manifest_of(
    *,
    queries: int,
    surfaces: list[dict[str, Any]],
    locations: list[dict[str, Any]],
    evidence: str = "metadata",
) -> Manifest:
    spec = make_spec(queries=queries, surfaces=[s["id"] for s in surfaces], evidence=evidence)
    spec["manifest"]["surfaces"] = surfaces
    spec["manifest"]["locations"] = locations
    return StudySpec.model_validate(spec).manifest


def figures(estimate: CostEstimate) -> dict[str, Any]:
    """The estimate's figures, per surface as (model, listed, per request, cells, min, max)."""
    return {
        "cells": estimate.cells,
        "range": (estimate.minUsd, estimate.maxUsd),
        "multiplier": estimate.multiplier,
        "bySurface": {
            surface: (share.model, share.listed, share.perRequestUsd, share.cells, share.minUsd, share.maxUsd)
            for surface, share in estimate.bySurface.items()
        },
    }


def test_two_api_surfaces_with_a_chosen_model_and_nothing_to_adjust() -> None:
    manifest = manifest_of(
        queries=10,
        surfaces=[{"id": "openai-api"}, {"id": "anthropic-api", "options": {"model": "claude-sonnet-4-20250514"}}],
        locations=[{"id": "us-nyc"}, {"id": "uk-lon"}],
    )

    # 10 queries x 2 locations = 20 cells per surface, 40 in all; no mobile proxy, metadata evidence: x1.
    #   openai-api    20 x 0.0002775 = 0.00555 -> 0.01; x0.8 = 0.008 -> 0.01; x1.3 = 0.013 -> 0.01
    #   anthropic-api 20 x 0.00615   = 0.123   -> 0.12; x0.8 = 0.096 -> 0.10; x1.3 = 0.156 -> 0.16
    #   base 0.00555 + 0.123 = 0.12855 -> 0.13;   x0.8 = 0.104 -> 0.10; x1.3 = 0.169 -> 0.17
    assert figures(estimate_cost(manifest)) == {
        "cells": 40,
        "range": (0.10, 0.17),
        "multiplier": 1.0,
        "bySurface": {
            "openai-api": ("gpt-4o-mini", True, 0.0002775, 20, 0.01, 0.01),
            "anthropic-api": ("claude-sonnet-4-20250514", True, 0.00615, 20, 0.10, 0.16),
        },
    }


def test_a_mobile_location_and_full_evidence_adjust_every_share_and_an_unpriced_surface_costs_a_cent() -> None:
    manifest = manifest_of(
        queries=50,
        surfaces=[{"id": "perplexity-api"}, {"id": "chatgpt-web"}, {"id": "grok"}],
        locations=[{"id": "us-nyc"}, {"id": "uk-lon"}, {"id": "de-ber", "proxyType": "mobile"}, {"id": "jp-tok"}],
        evidence="full",
    )

    # 50 queries x 4 locations = 200 cells per surface, 600 in all; one mobile location x1.2, full
    # evidence x1.1: x1.32.
    #   perplexity-api 200 x 0.00555 = 1.11; x1.32 = 1.4652; x0.8 = 1.17216 -> 1.17; x1.3 = 1.90476 -> 1.90
    #   chatgpt-web    200 x 0.02    = 4.00; x1.32 = 5.28;   x0.8 = 4.224   -> 4.22; x1.3 = 6.864   -> 6.86
    #   grok           200 x 0.01    = 2.00; x1.32 = 2.64;   x0.8 = 2.112   -> 2.11; x1.3 = 3.432   -> 3.43
    #   base 1.11 + 4.00 + 2.00 = 7.11; x1.32 = 9.3852; x0.8 = 7.50816 -> 7.51; x1.3 = 12.20076 -> 12.20
    assert figures(estimate_cost(manifest)) == {
        "cells": 600,
        "range": (7.51, 12.20),
        "multiplier": 1.32,
        "bySurface": {
            "perplexity-api": ("sonar", True, 0.00555, 200, 1.17, 1.90),
            "chatgpt-web": ("default", True, 0.02, 200, 4.22, 6.86),
            "grok": (None, False, 0.01, 200, 2.11, 3.43),
        },
    }


def test_a_model_the_table_does_not_list_costs_a_cent_and_a_free_surface_nothing() -> None:
    manifest = manifest_of(
        queries=1000,
        surfaces=[
            {"id": "openai-api", "options": {"model": "gpt-imaginary"}},
            {"id": "google-ai-api", "options": {"model": "gemini-2.5-pro"}},
            {"id": "google-search"},
        ],
        locations=[{"id": "us-national", "proxyType": "datacenter"}],
        evidence="none",
    )

    # 1,000 queries x 1 location = 1,000 cells per surface, 3,000 in all; datacenter proxy, no evidence: x1.
    #   openai-api    1000 x 0.01      = 10.00;            x0.8 = 8.00;            x1.3 = 13.00
    #   google-ai-api 1000 x 0.0100625 = 10.0625 -> 10.06; x0.8 = 8.048 -> 8.05;   x1.3 = 13.078 -> 13.08
    #   google-search 1000 x 0         = 0
    #   base 10 + 10.0625 = 20.0625 -> 20.06;              x0.8 = 16.048 -> 16.05; x1.3 = 26.078 -> 26.08
    assert figures(estimate_cost(manifest)) == {
        "cells": 3000,
        "range": (16.05, 26.08),
        "multiplier": 1.0,
        "bySurface": {
            "openai-api": ("gpt-imaginary", False, 0.01, 1000, 8.00, 13.00),
            "google-ai-api": ("gemini-2.5-pro", True, 0.0100625, 1000, 8.05, 13.08),
            "google-search": ("default", True, 0.0, 1000, 0.0, 0.0),
        },
    }


def test_the_estimate_rounds_half_a_cent_up_as_the_original_means_to() -> None:
    pricing = pricing_with_overrides("surfaces: {grok: {defaultModel: x, models: {x: {requestUsd: 0.005}}}}")
    manifest = manifest_of(queries=1, surfaces=[{"id": "grok"}], locations=[{"id": "us-nyc"}])

    # 1 cell x 0.005 = 0.005 -> 0.01 (banker's rounding would give 0.00); x0.8 = 0.008 -> 0.01; x1.3 = 0.013 -> 0.01
    assert estimate_cost(manifest, pricing).minUsd == 0.01
    assert estimate_cost(manifest, pricing).maxUsd == 0.01


def test_the_built_in_table_lists_a_default_model_for_every_surface_it_prices() -> None:
    table = builtin_pricing()

    assert set(table.surfaces) == {
        SurfaceId.OPENAI_API,
        SurfaceId.ANTHROPIC_API,
        SurfaceId.GOOGLE_AI_API,
        SurfaceId.PERPLEXITY_API,
        SurfaceId.CHATGPT_WEB,
        SurfaceId.PERPLEXITY_WEB,
        SurfaceId.GOOGLE_SEARCH,
    }
    assert (table.unknownSurfaceRequestUsd, table.mobileProxyMultiplier, table.fullEvidenceMultiplier) == (
        Decimal("0.01"),
        Decimal("1.2"),
        Decimal("1.1"),
    )
    assert (table.rangeLowMultiplier, table.rangeHighMultiplier) == (Decimal("0.8"), Decimal("1.3"))


def test_an_override_replaces_the_surfaces_it_names_and_the_numbers_it_gives_and_keeps_the_rest() -> None:
    table = pricing_with_overrides(
        """
        unknownSurfaceRequestUsd: 0.05
        rangeHighMultiplier: 2
        surfaces:
          openai-api:
            defaultModel: house-model
            models:
              house-model: {requestUsd: 0.003}
        """
    )

    assert table.unknownSurfaceRequestUsd == Decimal("0.05")
    assert (table.rangeLowMultiplier, table.rangeHighMultiplier) == (Decimal("0.8"), Decimal(2))
    assert table.price_of(SurfaceId.OPENAI_API, None).per_request == Decimal("0.003")
    assert not table.price_of(SurfaceId.OPENAI_API, "gpt-4o-mini").listed, "the surface's entry is replaced whole"
    assert table.price_of(SurfaceId.CHATGPT_WEB, None).per_request == Decimal("0.02")
    assert table.price_of(SurfaceId.GROK, None).per_request == Decimal("0.05")


def test_an_empty_override_is_the_built_in_table() -> None:
    assert pricing_with_overrides("") == builtin_pricing()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("surfaces: {openai-ap: {defaultModel: m, models: {m: {}}}}", "surfaces.openai-ap"),
        ("surfaces: {grok: {defaultModel: m, models: {m: {requestUsd: -1}}}}", "surfaces.grok.models.m.requestUsd"),
        ("surfaces: {grok: {defaultModel: m, models: {n: {}}}}", "defaultModel 'm' is not one of models"),
        ("mobileProxyMultiplier: 0", "mobileProxyMultiplier"),
        ("rangeLowMultiplier: 2", "rangeLowMultiplier must not be more than rangeHighMultiplier"),
        ("surfaces: {grok: {defaultModel: m, models: {m: {tokens: 3}}}}", "surfaces.grok.models.m.tokens"),
        ("- a list", "must be a mapping"),
        ("surfaces: [grok]", "must be a mapping"),
        ("a: [", "is not YAML"),
    ],
)
def test_an_unusable_pricing_file_is_refused_with_the_field_named(text: str, named: str) -> None:
    with pytest.raises(PricingInvalid) as refused:
        pricing_with_overrides(text, "pricing.yaml")

    assert named in str(refused.value)
    assert "pricing.yaml" in str(refused.value)


def test_the_first_status_carries_the_estimate_and_later_edits_do_not_move_it() -> None:
    spec = make_spec(queries=10, locations=("us-nyc", "uk-lon"))
    study = Study(spec)

    first = study.step()
    spec["manifest"]["surfaces"][0]["options"] = {"model": "gpt-4-turbo"}
    study.generation = 2
    later = study.step(at(1))

    assert (
        first.status["estimate"] == estimate_cost(StudySpec.model_validate(make_spec(queries=10)).manifest).as_stored()
    )
    assert later.status["estimate"] == first.status["estimate"]


def test_the_operator_prices_the_estimate_from_the_table_it_was_given() -> None:
    pricing = pricing_with_overrides("surfaces: {openai-api: {defaultModel: m, models: {m: {requestUsd: 1}}}}")
    spec = make_spec(queries=1, surfaces=("openai-api",), locations=("us-nyc",))

    decision = decide(
        name="priced", namespace="acme", uid=UID, generation=1, created_at=T0, spec=spec, status=None, jobs=[],
        now=T0, pricing=pricing,
    )  # fmt: skip

    assert decision.status.estimate is not None
    # 1 cell x $1 = 1.00; x0.8 = 0.80, x1.3 = 1.30
    assert (decision.status.estimate.minUsd, decision.status.estimate.maxUsd) == (0.80, 1.30)
