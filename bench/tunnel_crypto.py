"""Tunnel records and streams against bare AES-256-GCM, in the same process.

- record: one DATA frame encoded, sealed, opened and parsed (RecordSealer/RecordOpener and
  the frame codec), against one bare AESGCM encrypt + decrypt of the same payload. A ratio
  near 1 means the framing costs little beyond the cipher.
- stream: messages sent through a whole tunnel (both ends' asyncio tasks, fragmentation,
  credit, an in-memory transport), as MB/s of payload, against bare encrypt + decrypt of
  the same bytes in 64 KiB pieces.

Run: .venv/bin/python bench/tunnel_crypto.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tests.tunnel.helpers import open_pair

from bench._common import rate
from fjernhjelp.tunnel import frames
from fjernhjelp.tunnel.framing import RecordOpener, RecordSealer
from fjernhjelp.tunnel.limits import MAX_FRAGMENT, MAX_MESSAGE


def record_rates(size: int, n: int, rounds: int) -> tuple[float, float, float]:
    key = os.urandom(32)
    payload = os.urandom(size)
    aead = AESGCM(key)
    nonce_counter = [0]

    def bare() -> None:
        nonce_counter[0] += 1
        nonce = nonce_counter[0].to_bytes(12, "big")
        aead.decrypt(nonce, aead.encrypt(nonce, payload, b"hdr"), b"hdr")

    sealer, opener = RecordSealer(key), RecordOpener(key)

    def ours() -> None:
        frame = frames.data_frame(1, payload, end=True).encode()
        frames.parse(opener.open(sealer.seal(frame)))

    return _paired(lambda: rate(bare, n), lambda: rate(ours, n), rounds)


def _paired(
    baseline: Callable[[], float], measured: Callable[[], float], rounds: int
) -> tuple[float, float, float]:
    """Median baseline, median measured, and the median of per-round ratios: each round
    runs both back to back, so a neighbour's load hits both alike."""
    pairs = [(baseline(), measured()) for _ in range(rounds)]
    return (
        statistics.median(b for b, _ in pairs),
        statistics.median(m for _, m in pairs),
        statistics.median(m / b for b, m in pairs),
    )


async def _stream_once(total: int) -> float:
    pair = await open_pair()
    channel = await pair.technician.open("files")
    _, agent_side = await pair.agent.accept_stream()
    message = os.urandom(MAX_MESSAGE)
    count = total // MAX_MESSAGE

    async def consume() -> None:
        for _ in range(count):
            await agent_side.recv()

    start = time.perf_counter()
    consuming = asyncio.create_task(consume())
    for _ in range(count):
        await channel.send(message)
    await consuming
    elapsed = time.perf_counter() - start
    await pair.technician.close()
    return count * MAX_MESSAGE / elapsed / 1e6


def stream_rates(total: int, rounds: int) -> tuple[float, float, float]:
    key = os.urandom(32)
    aead = AESGCM(key)
    piece = os.urandom(65536)
    pieces = total // len(piece)

    def bare_mb_s() -> float:
        start = time.perf_counter()
        for i in range(pieces):
            nonce = i.to_bytes(12, "big")
            aead.decrypt(nonce, aead.encrypt(nonce, piece, b""), b"")
        return pieces * len(piece) / (time.perf_counter() - start) / 1e6

    return _paired(bare_mb_s, lambda: asyncio.run(_stream_once(total)), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--stream-mib", type=int, default=64)
    args = parser.parse_args()

    print(f"{'figure':<44}{'bare /s':>12}{'ours /s':>12}{'ratio':>8}")
    for label, size in (
        ("16 KiB records, seal+open", 16384),
        ("64 KiB records, seal+open", MAX_FRAGMENT),
    ):
        bare, ours, ratio = record_rates(size, args.records, args.rounds)
        print(f"{label:<44}{bare:>12.0f}{ours:>12.0f}{ratio:>8.2f}")
    bare, ours, ratio = stream_rates(args.stream_mib * 1024 * 1024, args.rounds)
    label = "stream through a tunnel, MB/s of payload"
    print(f"{label:<44}{bare:>12.0f}{ours:>12.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
