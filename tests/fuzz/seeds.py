"""The seed corpora: real messages (test vectors, frames and files the code itself
builds) so that the fuzzers start deep instead of from empty input."""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_seeds(name: str, corpus_root: Path) -> Path:
    """``corpus_root/name`` with every seed of the target in it (kept across runs, so
    what the fuzzer found interesting is the next run's start)."""
    from tests.fuzz.targets import TARGETS

    folder = corpus_root / name
    folder.mkdir(parents=True, exist_ok=True)
    for seed in TARGETS[name].seeds():
        (folder / f"seed-{hashlib.sha256(seed).hexdigest()[:16]}").write_bytes(seed)
    return folder
