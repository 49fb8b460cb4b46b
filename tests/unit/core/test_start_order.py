from __future__ import annotations

import itertools

from core_builders import manifest

from bentham.core.cells import cell_at
from bentham.core.ordering import start_order


def test_start_order_of_a_small_study_is_pinned() -> None:
    m = manifest(
        queries=2,
        surfaces=("openai-api", "grok", "meta-ai"),
        locations=("us-nyc", "uk-lon"),
        optional=("grok",),
    )
    order = start_order(m)
    coordinates = [(c.query_index, c.surface.value, c.location.value) for c in (cell_at(m, i) for i in order.all)]
    assert coordinates == [
        # required surfaces (openai-api, meta-ai) first, diagonally across locations
        (0, "openai-api", "us-nyc"),
        (0, "meta-ai", "uk-lon"),
        (0, "openai-api", "uk-lon"),
        (0, "meta-ai", "us-nyc"),
        (1, "openai-api", "us-nyc"),
        (1, "meta-ai", "uk-lon"),
        (1, "openai-api", "uk-lon"),
        (1, "meta-ai", "us-nyc"),
        # then the optional surface
        (0, "grok", "us-nyc"),
        (0, "grok", "uk-lon"),
        (1, "grok", "us-nyc"),
        (1, "grok", "uk-lon"),
    ]


def test_start_order_covers_every_cell_once() -> None:
    m = manifest(
        queries=5,
        surfaces=("openai-api", "grok", "meta-ai", "gemini-web"),
        locations=("us-nyc", "uk-lon", "de-ber"),
        optional=("meta-ai",),
    )
    order = start_order(m)
    assert sorted(order.all) == list(range(m.cell_count))
    required = {s.value for s in m.required_surface_ids}
    assert all(cell_at(m, i).surface.value in required for i in order.required)
    assert all(cell_at(m, i).surface.value not in required for i in order.optional)


def test_consecutive_starts_hit_different_surfaces_and_locations() -> None:
    m = manifest(
        queries=4,
        surfaces=("openai-api", "grok", "meta-ai"),
        locations=("us-nyc", "uk-lon", "de-ber", "fr-par"),
    )
    cells = [cell_at(m, i) for i in start_order(m).required]
    for query in range(4):
        one_query = [c for c in cells if c.query_index == query]
        for before, after in itertools.pairwise(one_query):
            assert before.surface != after.surface and before.location != after.location


def test_every_surface_and_location_advances_at_the_same_pace() -> None:
    m = manifest(queries=10, surfaces=("openai-api", "grok", "meta-ai"), locations=("us-nyc", "uk-lon"))
    first = [cell_at(m, i) for i in start_order(m).all[:12]]
    assert {s: sum(c.surface == s for c in first) for s in {c.surface for c in first}} == dict.fromkeys(
        {c.surface for c in first}, 4
    )
    assert sorted(sum(c.location == loc for c in first) for loc in {c.location for c in first}) == [6, 6]
