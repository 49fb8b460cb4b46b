from __future__ import annotations

import itertools
from collections import Counter

from core_builders import T0, make_spec, manifest

from bentham.api.manifest import Manifest
from bentham.api.spec import StudySpec
from bentham.core.cells import cell_at
from bentham.core.checkpoint import PENDING, CellRecord, CellState
from bentham.core.fanout import cells_to_start, in_flight_limit, per_surface_limit
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


def with_execution(**execution: object) -> Manifest:
    raw = make_spec(queries=3, surfaces=("openai-api", "grok"), locations=("us-nyc", "uk-lon"))
    raw["manifest"]["execution"] = execution
    return StudySpec.model_validate(raw).manifest


def test_surface_first_runs_one_surfaces_cells_before_the_next() -> None:
    m = with_execution(executionOrder="surface-first")
    surfaces = [cell_at(m, i).surface.value for i in start_order(m).required]
    assert surfaces == ["openai-api"] * 6 + ["grok"] * 6


def test_location_first_runs_one_locations_cells_before_the_next() -> None:
    m = with_execution(executionOrder="location-first")
    locations = [cell_at(m, i).location.value for i in start_order(m).required]
    assert locations == ["us-nyc"] * 6 + ["uk-lon"] * 6


def test_shuffled_queries_follow_the_study_uid_and_keep_every_cell() -> None:
    m = with_execution(shuffleQueries=True)
    first = start_order(m, "uid-a").required
    assert start_order(m, "uid-a").required == first  # the same after a restart
    assert sorted(first) == sorted(start_order(m).required)
    orders = {tuple(cell_at(m, i).query_index for i in start_order(m, f"uid-{n}").required[::4]) for n in range(20)}
    assert len(orders) > 1  # another study, another order


def test_concurrency_per_surface_holds_each_surface_to_its_limit() -> None:
    m = with_execution(concurrencyPerSurface=2)
    limit = per_surface_limit(m)
    assert limit is not None
    records = [PENDING] * m.cell_count
    chosen = cells_to_start(records, start_order(m), capacity=10, now=T0, per_surface=limit)
    assert Counter(cell_at(m, i).surface.value for i in chosen) == {"openai-api": 2, "grok": 2}
    records[chosen[0]] = CellRecord(CellState.RUNNING, 1)
    more = cells_to_start(records, start_order(m), capacity=10, now=T0, per_surface=limit)
    assert Counter(cell_at(m, i).surface.value for i in more)[cell_at(m, chosen[0]).surface.value] == 1


def test_max_concurrency_caps_the_parallelism_and_stands_in_for_an_unset_one() -> None:
    raw = make_spec(parallelism=10)
    raw["manifest"]["execution"] = {"maxConcurrency": 4}
    assert in_flight_limit(StudySpec.model_validate(raw), 10) == 4
    raw["executor"]["parallelism"] = 2
    assert in_flight_limit(StudySpec.model_validate(raw), 2) == 2
    del raw["executor"]["parallelism"]
    assert in_flight_limit(StudySpec.model_validate(raw), 10) == 4
    assert in_flight_limit(StudySpec.model_validate(make_spec(parallelism=7)), 7) == 7
