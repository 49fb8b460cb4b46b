from __future__ import annotations

import re

from core_builders import manifest
from hypothesis import given
from hypothesis import strategies as st

from bentham.core.cells import Cell, cell_at, cell_key, cells_of
from bentham.core.jobs import job_name

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^[a-z0-9-]{1,63}$")


def test_cell_index_is_query_then_surface_then_location_in_manifest_order() -> None:
    m = manifest(queries=3, surfaces=("openai-api", "grok", "meta-ai"), locations=("us-nyc", "uk-lon"))
    cells = cells_of(m)
    assert len(cells) == 18 and [c.index for c in cells] == list(range(18))
    # index = query * (S*L) + surface_pos * L + location_pos
    assert cell_at(m, 2 * 6 + 1 * 2 + 1) == Cell(15, 2, m.surfaces[1].id, m.locations[1].id)
    assert len({(c.query_index, c.surface, c.location) for c in cells}) == 18


def test_cell_key_is_a_short_label_value() -> None:
    m = manifest(queries=1000, surfaces=("perplexity-api",), locations=("us-national",))
    key = cell_key(cell_at(m, 999))
    assert key == "q999-perplexity-api-us-national"
    assert LABEL_VALUE.match(key)


def test_job_name_is_study_uid_hash_cell_and_attempt() -> None:
    name = job_name("mystudy", "7f1c2a9e-0d4b-4c55-9a3e-2b8f6c1d0e99", 42, 2)
    assert re.fullmatch(r"mystudy-[0-9a-f]{5}-c42-a2", name)
    assert name == job_name("mystudy", "7f1c2a9e-0d4b-4c55-9a3e-2b8f6c1d0e99", 42, 2)


def test_job_name_differs_between_studies_of_the_same_name() -> None:
    assert job_name("s", "uid-one", 0, 1) != job_name("s", "uid-two", 0, 1)


def test_job_name_fits_a_dns_label_for_the_longest_study_name() -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    name = job_name(longest, "uid", 999_999, 31)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert name.endswith("-c999999-a31")


@given(
    study=st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", fullmatch=True),
    uid=st.uuids().map(str),
    cell=st.integers(0, 999_999),
    attempt=st.integers(1, 31),
)
def test_job_names_are_dns_labels_and_unique_per_cell_and_attempt(
    study: str, uid: str, cell: int, attempt: int
) -> None:
    name = job_name(study, uid, cell, attempt)
    assert len(name) <= 63 and DNS_LABEL.match(name)
    assert job_name(study, uid, cell, attempt) == name
    assert job_name(study, uid, cell + 1, attempt) != name
    assert job_name(study, uid, cell, attempt + 1) != name


def test_every_cell_and_attempt_of_a_large_study_gets_its_own_job_name() -> None:
    names = {job_name("study", "uid", cell, attempt) for cell in range(3_000) for attempt in range(1, 11)}
    assert len(names) == 30_000
