"""The cost of one request from the tokens it used, at the estimate's own prices (core/pricing.py)."""

from __future__ import annotations

from decimal import Decimal

from bentham.api.manifest import SurfaceId
from bentham.core.pricing import builtin_pricing


def test_a_listed_model_costs_its_tokens_at_its_prices_plus_its_request_fee() -> None:
    table = builtin_pricing()

    # sonar: $0.001 per 1k tokens in and out, $0.005 a request.
    cost = table.request_cost(SurfaceId.PERPLEXITY_API, "sonar", input_tokens=1000, output_tokens=3000)

    assert cost == Decimal("0.001") + Decimal("0.003") + Decimal("0.005")


def test_the_average_request_of_the_estimate_is_the_request_cost_of_the_average_tokens() -> None:
    table = builtin_pricing()
    model = table.surfaces[SurfaceId.OPENAI_API].models["gpt-4o"]

    cost = table.request_cost(SurfaceId.OPENAI_API, "gpt-4o", input_tokens=50, output_tokens=500)

    assert cost == model.per_request == table.price_of(SurfaceId.OPENAI_API, "gpt-4o").per_request


def test_an_unlisted_model_or_surface_costs_the_unknown_surface_price() -> None:
    table = builtin_pricing()

    assert table.request_cost(SurfaceId.OPENAI_API, "gpt-9", input_tokens=10, output_tokens=10) == Decimal("0.01")
    assert table.request_cost(SurfaceId.GROK, "grok-3", input_tokens=10, output_tokens=10) == Decimal("0.01")


def test_a_surfaces_default_model_is_the_tables() -> None:
    table = builtin_pricing()

    assert table.default_model(SurfaceId.ANTHROPIC_API) == "claude-3-5-haiku-latest"
    assert table.default_model(SurfaceId.GROK) is None
