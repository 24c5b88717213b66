"""Fuzz targets for the session block a downloaded Support client carries after its
signed stamp (support/handover.py): read by the client from its own file at start, before
anything is verified, so every byte of it is the downloader's to choose."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable

from fjernhjelp.support import handover as ho
from tests.fuzz.harness import Target, refuses, same

# What precedes the block in a real file (the stamped client); its bytes do not matter
# to the block's reader, only that they are there.
_CLIENT = b"\x7fELF" + bytes(60) + b"stamp" * 20
_SESSION = ho.Handover(
    uuid.UUID("7f1c3a52-8d6e-4c1b-9a0e-2f4b6c8d0e1f"),
    "t" * 43,
    "Kari Nordmann",
    "Journal AS",
    "Blåbærlia legekontor",
)


def _read(data: bytes) -> None:
    result = refuses(lambda: ho.read_handover(io.BytesIO(data)), ho.HandoverRefused)
    if result is None:
        return
    start, found = result
    if found is None:
        assert start == len(data)  # no block: the whole file is the client
        return
    length, magic = ho.TRAILER.unpack(data[-ho.TRAILER.size :])
    assert magic == ho.MAGIC and 0 < length <= ho.MAX_PAYLOAD
    assert start == len(data) - ho.TRAILER.size - length >= 0
    assert isinstance(found.session_id, uuid.UUID)
    assert all(
        isinstance(v, str)
        for v in (found.client_token, found.technician, found.vendor, found.customer)
    )


def handover(data: bytes) -> None:
    """The tail of a downloaded file (support.handover): (start, Handover), the whole
    length and None for a file without a block, or HandoverRefused."""
    _read(data)


def handover_block(data: bytes) -> None:
    """The block's payload as the input, with a length and magic that fit, after a
    client: the reader gets as far as the JSON."""
    payload = data[: ho.MAX_PAYLOAD] or b"{}"
    _read(_CLIENT + payload + ho.TRAILER.pack(len(payload), ho.MAGIC))


def _file_seeds() -> Iterable[bytes]:
    block = ho.handover_block(_SESSION)
    yield _CLIENT + block
    yield _CLIENT  # no block
    yield block  # a block with nothing before it


def _payload_seeds() -> Iterable[bytes]:
    block = ho.handover_block(_SESSION)
    yield block[: -ho.TRAILER.size]


TARGETS = [
    Target("handover", handover, _file_seeds, max_len=4096),
    Target("handover-block", handover_block, _payload_seeds, max_len=2100, json_input=same),
]
