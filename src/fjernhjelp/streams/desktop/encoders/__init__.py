"""Encoders, one per file behind ``base.Encoder``, as noVNC keeps one decoder per file."""

from __future__ import annotations

from fjernhjelp.streams.desktop.encoders.base import Encoder
from fjernhjelp.streams.desktop.encoders.raw import RawEncoder
from fjernhjelp.streams.desktop.encoders.tight import TightEncoder
from fjernhjelp.streams.desktop.encoders.zrle import ZrleEncoder
from fjernhjelp.streams.desktop.rfb import Encoding

__all__ = ["PIXEL_ENCODERS", "Encoder", "RawEncoder", "TightEncoder", "ZrleEncoder"]

# Encodings for pixel data, by the number the client lists them with.
PIXEL_ENCODERS: dict[int, type[Encoder]] = {
    Encoding.TIGHT: TightEncoder,
    Encoding.ZRLE: ZrleEncoder,
    Encoding.RAW: RawEncoder,
}
