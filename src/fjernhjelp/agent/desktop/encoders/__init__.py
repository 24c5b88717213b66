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
