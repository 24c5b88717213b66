"""The session a downloaded client is for: a block the server appends after its stamp.

The end user enters the code on the start page, and that spends it (a code works once).
The client the page then hands out must join *that* session without the code, so each
download carries, after the server's stamp (``support.stamp``), the session's id and the
end-user token the join gave this browser (it rides in the download request's cookie),
with the names the page showed. Run without a code, the client takes the session from
here; given a code, it joins with the code as before.

Why a token in a file is acceptable: it is the credential the browser's cookie already
holds, for the one person who joined; it opens the control link only for the first key
that logs in with it, and only while the session is joined or running
(remote/support_tunnel.client_login), so once the client has started, or the session is
over, the file carries nothing anyone can use. It is not signed because it carries no
trust: the server and its key come from the signed stamp, and a forged block can only
name a session whose token the forger holds already.

A downloaded file, byte for byte::

    the stamped client   (support.stamp: executable, payload, signature, trailer)
    payload  P bytes     UTF-8 JSON {"session_id", "client_token", "technician",
                         "vendor", "customer"}
    trailer  20 bytes    4  P, big-endian (1..MAX_PAYLOAD)
                         16 MAGIC, b"fjernhjelp-sessn"
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"fjernhjelp-sessn"
TRAILER = struct.Struct(">I16s")
MAX_PAYLOAD = 2048
FIELDS = frozenset({"session_id", "client_token", "technician", "vendor", "customer"})


@dataclass(frozen=True)
class Handover:
    session_id: uuid.UUID
    client_token: str
    technician: str
    vendor: str
    customer: str


class HandoverRefused(Exception):
    """A block is there but not well-formed: the file was cut or altered."""


def handover_block(handover: Handover) -> bytes:
    payload = json.dumps(
        {
            "session_id": str(handover.session_id),
            "client_token": handover.client_token,
            "technician": handover.technician[:200],
            "vendor": handover.vendor[:200],
            "customer": handover.customer[:200],
        },
        separators=(",", ":"),
    ).encode()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("the session block is too long")
    return payload + TRAILER.pack(len(payload), MAGIC)


def read_handover(fh: BinaryIO) -> tuple[int, Handover | None]:
    """The length of the stamped client before the block, and the block's session (None,
    and the whole length, for a file without one)."""
    size = fh.seek(0, os.SEEK_END)
    if size < TRAILER.size:
        return size, None
    fh.seek(size - TRAILER.size)
    length, magic = TRAILER.unpack(fh.read(TRAILER.size))
    if magic != MAGIC:
        return size, None
    if not 0 < length <= MAX_PAYLOAD or length + TRAILER.size > size:
        raise HandoverRefused("the session block's length does not match the file")
    start = size - TRAILER.size - length
    fh.seek(start)
    try:
        body = json.loads(fh.read(length))
        if not isinstance(body, dict) or set(body) != FIELDS:
            raise ValueError("unexpected fields")
        if not all(isinstance(body[name], str) for name in FIELDS):
            raise ValueError("not text")
        handover = Handover(
            session_id=uuid.UUID(body["session_id"]),
            client_token=body["client_token"],
            technician=body["technician"],
            vendor=body["vendor"],
            customer=body["customer"],
        )
    # RecursionError: JSON nested deeper than the interpreter's limit fits in MAX_PAYLOAD,
    # and would escape read_stamp's HandoverRefused handling (found by tests/fuzz).
    except (ValueError, RecursionError) as exc:
        raise HandoverRefused("the session block is not well-formed") from exc
    return start, handover
