from __future__ import annotations

import base64
import json
import zlib
from datetime import timedelta

import pytest
from core_builders import T0
from hypothesis import given
from hypothesis import strategies as st

from bentham.api.status import Checkpoint, StudyStatus
from bentham.core.checkpoint import (
    CellRecord,
    CellState,
    CheckpointUnreadable,
    fresh_records,
    pack_cells,
    read_records,
    unpack_cells,
    write_checkpoint,
)
from bentham.core.timestamps import truncate_to_millis

BASE = truncate_to_millis(T0 + timedelta(microseconds=456_789))


def records_strategy(max_size: int = 300) -> st.SearchStrategy[list[CellRecord]]:
    # Some cells were reopened by a person: `spent` of their attempts came before (0 for most).
    spent = st.integers(0, 31) | st.just(0)
    plain = st.builds(
        lambda state, attempts, spent: CellRecord(state, attempts, spent=min(spent, attempts)),
        st.sampled_from([s for s in CellState if s is not CellState.RETRY_WAIT]),
        st.integers(0, 31),
        spent,
    )
    waiting = st.builds(
        lambda attempts, ms, spent: CellRecord(
            CellState.RETRY_WAIT, attempts, BASE + timedelta(milliseconds=ms), min(spent, attempts)
        ),
        st.integers(0, 31),
        st.integers(0, 10**9),
        spent,
    )
    return st.lists(plain | waiting, max_size=max_size)


@given(records_strategy())
def test_cells_round_trip_through_the_packed_form(records: list[CellRecord]) -> None:
    assert unpack_cells(pack_cells(records, base=BASE), base=BASE) == records


@given(records_strategy(50))
def test_checkpoint_round_trips_through_the_status_json(records: list[CellRecord]) -> None:
    checkpoint = write_checkpoint(records, previous=None, previous_records=None, in_flight=[], now=BASE)
    status = json.loads(json.dumps(StudyStatus(checkpoint=checkpoint).model_dump(mode="json", exclude_none=True)))
    assert read_records(StudyStatus.model_validate(status).checkpoint) == records


def test_a_retry_already_due_is_stored_as_due_at_the_checkpoint_time() -> None:
    overdue = [CellRecord(CellState.RETRY_WAIT, 2, BASE - timedelta(seconds=5))]
    assert unpack_cells(pack_cells(overdue, base=BASE), base=BASE) == [CellRecord(CellState.RETRY_WAIT, 2, BASE)]


def test_checkpoint_sequence_grows_only_when_a_record_changes() -> None:
    records = fresh_records(10)
    first = write_checkpoint(records, previous=None, previous_records=None, in_flight=[], now=T0)
    assert first.sequence == 1
    same = write_checkpoint(
        list(records), previous=first, previous_records=records, in_flight=[], now=T0 + timedelta(minutes=5)
    )
    assert same == first
    changed = [CellRecord(CellState.RUNNING, 1), *records[1:]]
    second = write_checkpoint(
        changed, previous=first, previous_records=records, in_flight=["job"], now=T0 + timedelta(minutes=5)
    )
    assert second.sequence == 2 and second.timestamp == "2030-01-01T12:05:00.000Z"
    assert read_records(second) == changed


def status_json_bytes(records: list[CellRecord], in_flight: int) -> int:
    checkpoint = write_checkpoint(
        records,
        previous=None,
        previous_records=None,
        in_flight=[f"a-very-long-study-name-of-forty-chars-x-3f9a1-c{i}-a1" for i in range(in_flight)],
        now=T0,
    )
    return len(json.dumps(StudyStatus(checkpoint=checkpoint).model_dump(mode="json", exclude_none=True)))


def mixed_records(count: int) -> list[CellRecord]:
    # A worst-ish case: states and attempts vary cell to cell, every tenth cell waits to retry.
    records = []
    for i in range(count):
        mixed = (i * 2654435761) % 2**32
        if i % 10 == 0:
            records.append(CellRecord(CellState.RETRY_WAIT, 1 + mixed % 9, T0 + timedelta(milliseconds=mixed % 60_000)))
        else:
            records.append(CellRecord(CellState(mixed % 5 if mixed % 5 != 2 else 3), mixed % 11))
    return records


def test_status_of_100k_cells_serializes_well_under_one_mib() -> None:
    assert status_json_bytes(mixed_records(100_000), in_flight=1_000) < 1024 * 1024 // 2


def test_status_of_10k_cells_stays_under_100_kib() -> None:
    assert status_json_bytes(mixed_records(10_000), in_flight=100) < 100 * 1024


def test_a_typical_study_checkpoint_is_tiny() -> None:
    records = [CellRecord(CellState.COMPLETED, 1)] * 60_000 + fresh_records(40_000)
    assert len(pack_cells(records, base=T0)) < 2_000


@pytest.mark.parametrize(
    "packed",
    [
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b"\x05\x00")).decode(),  # promises 5 cells, holds 1
        base64.b64encode(zlib.compress(b"\x01\xe0")).decode(),  # state 7
        base64.b64encode(zlib.compress(b"\x01\x40")).decode(),  # a retry without its time
        base64.b64encode(zlib.compress(b"\x01\x00\x00")).decode(),  # an empty list of reopened cells
        base64.b64encode(zlib.compress(b"\x01\x01\x01\x01\x02")).decode(),  # 2 spent of 1 attempt
        base64.b64encode(zlib.compress(b"\x01\x01\x01\x02\x01")).decode(),  # reopened cell 1 of 1
        base64.b64encode(zlib.compress(b"\x01\x01\x01\x01\x01\x00")).decode(),  # trailing bytes
        base64.b64encode(zlib.compress(b"\x01\x00")[:-3]).decode(),  # truncated stream
    ],
)
def test_a_corrupt_checkpoint_raises_checkpoint_unreadable(packed: str) -> None:
    with pytest.raises(CheckpointUnreadable):
        unpack_cells(packed, base=T0)


def test_a_checkpoint_of_another_version_is_unreadable() -> None:
    with pytest.raises(CheckpointUnreadable):
        read_records(Checkpoint(version=2, cells=pack_cells([CellRecord()], base=T0), timestamp="2030-01-01T00:00:00Z"))


def test_no_checkpoint_reads_as_none() -> None:
    assert read_records(None) is None and read_records(Checkpoint()) is None


def test_a_record_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="<= 31"):
        CellRecord(CellState.RUNNING, 32)
    with pytest.raises(ValueError, match=r"spent \(3\) <= attempts \(2\)"):
        CellRecord(CellState.PENDING, 2, spent=3)
    with pytest.raises(ValueError, match="retry_at is set exactly"):
        CellRecord(CellState.RETRY_WAIT, 1)
    with pytest.raises(ValueError, match="retry_at is set exactly"):
        CellRecord(CellState.COMPLETED, 1, T0)


def test_records_without_a_retry_time_are_shared_and_those_with_one_are_not() -> None:
    first = CellRecord(CellState.RUNNING, 2).moved(CellState.COMPLETED)
    second = CellRecord(CellState.RUNNING, 2, spent=0).moved(CellState.COMPLETED)
    assert first is second and first == CellRecord(CellState.COMPLETED, 2)
    assert CellRecord(CellState.RUNNING, 2, spent=1).moved(CellState.COMPLETED) == CellRecord(
        CellState.COMPLETED, 2, spent=1
    )
    retrying = [CellRecord(CellState.RUNNING, 1).moved(CellState.RETRY_WAIT, retry_at=T0) for _ in range(2)]
    assert retrying[0] == retrying[1] and retrying[0] is not retrying[1]
