"""File transfer through the files service, as a ratio to copying and hashing the file.

Both sides run in one process over an in-memory channel (the tunnel's cipher and relay
are measured in bench/tunnel.py), so this isolates what the service itself costs: the
sender hashes the file, then reads and sends 64 KiB chunks; the receiver writes, hashes
and renames. The baseline is what any verified copy must do at least: read the file,
write it, and SHA-256 it once on each side (shutil.copyfile plus two hashes).

Run: .venv/bin/python bench/agent_files.py [--megabytes 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fjernhjelp.streams.files.roots import FilePolicy
from fjernhjelp.streams.files.service import serve_files
from fjernhjelp.streams.files.technician import get_file, put_file
from fjernhjelp.tunnel.channel import memory_pair


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def baseline(source: Path, target: Path) -> float:
    start = time.perf_counter()
    sha256_of(source)
    shutil.copyfile(source, target)
    sha256_of(target)
    elapsed = time.perf_counter() - start
    target.unlink()
    return elapsed


def through_service(source: Path, root: Path, back: Path) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        agent_end, tech_end = memory_pair()
        service = asyncio.create_task(serve_files(agent_end, FilePolicy.create([root])))
        start = time.perf_counter()
        await put_file(tech_end, source, "upload.bin")
        put_time = time.perf_counter() - start
        start = time.perf_counter()
        await get_file(tech_end, "upload.bin", back)
        get_time = time.perf_counter() - start
        await tech_end.close()
        await service
        return put_time, get_time

    times = asyncio.run(main())
    (root / "upload.bin").unlink()
    back.unlink()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fjh-bench-files-"))
    try:
        source = work / "source.bin"
        with source.open("wb") as fh:
            for _ in range(args.megabytes):
                fh.write(os.urandom(1 << 20))
        root = work / "root"
        root.mkdir()
        base, puts, gets = [], [], []
        for _ in range(args.rounds):
            base.append(baseline(source, work / "copy.bin"))
            put_time, get_time = through_service(source, root, work / "back.bin")
            puts.append(put_time)
            gets.append(get_time)
        size = args.megabytes
        b, p, g = (statistics.median(x) for x in (base, puts, gets))
        print(f"{size} MB, median of {args.rounds} rounds")
        print(f"baseline verified copy: {size / b:7.0f} MB/s")
        print(f"put through the service: {size / p:7.0f} MB/s  ratio {b / p:.2f}")
        print(f"get through the service: {size / g:7.0f} MB/s  ratio {b / g:.2f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
