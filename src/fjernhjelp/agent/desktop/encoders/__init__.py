"""Encoders, one per file behind ``base.Encoder``, as noVNC keeps one decoder per file."""

from __future__ import annotations

from fjernhjelp.agent.desktop.encoders.base import Encoder
from fjernhjelp.agent.desktop.encoders.raw import RawEncoder
from fjernhjelp.agent.desktop.encoders.tight import TightEncoder
from fjernhjelp.agent.desktop.encoders.zrle import ZrleEncoder
from fjernhjelp.agent.desktop.rfb import Encoding

# Encodings for pixel data, by the number the client lists them with.
PIXEL_ENCODERS: dict[int, type[Encoder]] = {
    Encoding.TIGHT: TightEncoder,
    Encoding.ZRLE: ZrleEncoder,
    Encoding.RAW: RawEncoder,
}


def choose(client_encodings: tuple[int, ...]) -> Encoder:
    """The first pixel encoding in the client's order of preference that the agent has.

    Raw is always allowed: RFB requires every client to decode it.
    """
    for number in client_encodings:
        if number in PIXEL_ENCODERS:
            return PIXEL_ENCODERS[number]()
    return RawEncoder()
