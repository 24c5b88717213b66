"""Records: authenticated, in order, bounded; and what each kind of tampering does."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fjernhjelp.tunnel.errors import (
    BadRecordTag,
    RecordError,
    RecordOutOfOrder,
    RecordsDisabled,
    RecordTooLarge,
    TruncatedRecord,
)
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.limits import MAX_PLAINTEXT, MAX_RECORD, MIN_RECORD

KEY = bytes(range(32))


def pair() -> tuple[RecordSealer, RecordOpener]:
    return RecordSealer(KEY), RecordOpener(KEY)


def test_records_round_trip_in_order() -> None:
    sealer, opener = pair()
    messages = [b"", b"a", os.urandom(1000), os.urandom(MAX_PLAINTEXT)]
    records = [sealer.seal(m) for m in messages]
    assert [opener.open(r) for r in records] == messages
    assert [int.from_bytes(r[:8], "big") for r in records] == [0, 1, 2, 3]
    assert len(records[-1]) == MAX_RECORD


def test_record_layout_is_counter_ciphertext_tag() -> None:
    sealer, _ = pair()
    record = sealer.seal(b"hello")
    assert record[:8] == bytes(8)
    assert len(record) == 8 + 5 + 16


@pytest.mark.parametrize("position", [0, 7, 8, 12, 20, 28])
def test_one_flipped_bit_anywhere_fails(position: int) -> None:
    sealer, opener = pair()
    record = bytearray(sealer.seal(b"hello, world"))
    record[position] ^= 0x80
    with pytest.raises((BadRecordTag, RecordOutOfOrder)):
        opener.open(bytes(record))


def test_every_byte_position_is_protected() -> None:
    sealer = RecordSealer(KEY)
    record = sealer.seal(b"x" * 40)
    for position in range(len(record)):
        bad = bytearray(record)
        bad[position] ^= 0x01
        with pytest.raises(RecordError):
            RecordOpener(KEY).open(bytes(bad))


def test_replay_is_refused() -> None:
    sealer, opener = pair()
    first = sealer.seal(b"one")
    opener.open(first)
    with pytest.raises(RecordOutOfOrder) as info:
        opener.open(first)
    assert (info.value.expected, info.value.got) == (1, 0)


def test_reorder_is_refused() -> None:
    sealer, opener = pair()
    first, second = sealer.seal(b"one"), sealer.seal(b"two")
    with pytest.raises(RecordOutOfOrder):
        opener.open(second)
    assert first  # never delivered: the opener is disabled now


def test_dropped_record_is_noticed() -> None:
    sealer, opener = pair()
    opener.open(sealer.seal(b"one"))
    sealer.seal(b"dropped by the relay")
    with pytest.raises(RecordOutOfOrder):
        opener.open(sealer.seal(b"three"))


def test_relabelled_counter_still_needs_the_tag() -> None:
    # Replaying a record under the expected counter means changing its header, which the
    # AAD (and the nonce) cover.
    sealer, opener = pair()
    first = sealer.seal(b"one")
    opener.open(first)
    relabelled = (1).to_bytes(8, "big") + first[8:]
    with pytest.raises(BadRecordTag):
        opener.open(relabelled)


def test_truncated_and_oversized_records_are_refused() -> None:
    with pytest.raises(TruncatedRecord):
        RecordOpener(KEY).open(bytes(MIN_RECORD - 1))
    with pytest.raises(RecordTooLarge):
        RecordOpener(KEY).open(bytes(MAX_RECORD + 1))
    with pytest.raises(ValueError):
        RecordSealer(KEY).seal(bytes(MAX_PLAINTEXT + 1))


def test_nothing_opens_after_a_failure() -> None:
    sealer, opener = pair()
    good = sealer.seal(b"one")
    with pytest.raises(BadRecordTag):
        opener.open(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(RecordsDisabled):
        opener.open(good)


def test_other_key_or_reflected_record_fails() -> None:
    # Each direction has its own key: a record bounced back to its sender does not open.
    send_key, receive_key = os.urandom(32), os.urandom(32)
    mine = RecordSealer(send_key).seal(b"to the agent")
    with pytest.raises(BadRecordTag):
        RecordOpener(receive_key).open(mine)


def test_counter_exhaustion_refuses_to_reuse_a_nonce() -> None:
    sealer = RecordSealer(KEY)
    sealer.counter = 2**64 - 2
    sealer.seal(b"last one")
    with pytest.raises(RecordError):
        sealer.seal(b"one too many")


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        RecordSealer(bytes(16))
    with pytest.raises(ValueError):
        RecordOpener(bytes(31))


@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_record_errors(data: bytes) -> None:
    with pytest.raises(RecordError):
        RecordOpener(KEY).open(data)
