"""Raw: the client's pixels, uncompressed. Every client decodes it."""

from __future__ import annotations

import numpy as np

from fjernhjelp.streams.desktop.encoders.base import EncodedRect, Rect, Settings
from fjernhjelp.streams.desktop.rfb import Encoding


class RawEncoder:
    encoding = Encoding.RAW

    def encode(self, frame: np.ndarray, rect: Rect, settings: Settings) -> list[EncodedRect]:
        pixels = settings.format.pack(rect.slice(frame))
        return [EncodedRect(rect, self.encoding, pixels.tobytes())]
