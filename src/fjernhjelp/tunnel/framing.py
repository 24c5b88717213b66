"""Records: AES-256-GCM with an explicit 64-bit counter (docs/tunnel.md, "Records").

    record = counter (8 bytes, big-endian) || ciphertext || tag (16 bytes)
    nonce  = 0x00000000 || counter
    AAD    = counter (the 8-byte header)

Each direction has its own key and its own counter starting at 0, so a nonce is never
used twice under one key. The receiver accepts exactly the next counter: a replayed,
reordered or dropped record shows as a wrong counter. After any failure the opener
refuses everything, and the tunnel closes; there is no path that returns bytes without
a verified tag.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fjernhjelp.tunnel.errors import (
    BadRecordTag,
    CounterExhausted,
    RecordOutOfOrder,
    RecordsDisabled,
    RecordTooLarge,
    TruncatedRecord,
)
from fjernhjelp.tunnel.limits import MAX_PLAINTEXT, MAX_RECORD, MIN_RECORD, RECORD_HEADER

_COUNTER = struct.Struct(">Q")
_NONCE_PREFIX = bytes(4)
_LAST_COUNTER = 2**64 - 1  # never sealed: counters run 0 .. 2^64 - 2


def _check_key(key: bytes) -> AESGCM:
    if len(key) != 32:
        raise ValueError("AES-256-GCM takes a 32-byte key")
    return AESGCM(key)


class RecordSealer:
    """Seals one direction's records in order."""

    def __init__(self, key: bytes) -> None:
        self._aead = _check_key(key)
        self.counter = 0

    def seal(self, plaintext: bytes) -> bytes:
        if len(plaintext) > MAX_PLAINTEXT:
            raise ValueError(f"plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT}")
        if self.counter >= _LAST_COUNTER:
            raise CounterExhausted("no counter left in this direction")
        header = _COUNTER.pack(self.counter)
        self.counter += 1
        return header + self._aead.encrypt(_NONCE_PREFIX + header, plaintext, header)


class RecordOpener:
    """Opens one direction's records, accepting only the next counter."""

    def __init__(self, key: bytes) -> None:
        self._aead = _check_key(key)
        self.expected = 0
        self._failed = False

    def open(self, record: bytes) -> bytes:
        if self._failed:
            raise RecordsDisabled("an earlier record failed; the tunnel is closing")
        self._failed = True  # cleared only on success below
        if len(record) > MAX_RECORD:
            raise RecordTooLarge(len(record))
        if len(record) < MIN_RECORD:
            raise TruncatedRecord(len(record))
        header = bytes(record[:RECORD_HEADER])
        (counter,) = _COUNTER.unpack(header)
        if counter != self.expected:
            raise RecordOutOfOrder(self.expected, counter)
        try:
            sealed = memoryview(record)[RECORD_HEADER:]  # no copy of up to 64 KiB
            plaintext = self._aead.decrypt(_NONCE_PREFIX + header, sealed, header)
        except InvalidTag:
            raise BadRecordTag(counter) from None
        self.expected += 1
        self._failed = False
        return plaintext
