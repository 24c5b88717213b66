"""`fjernhjelp serve` keeps what start-up left out of garbage collections and collects
the old generation rarely (cli/serve.py; the why and the figures in docs/BENCHMARKS.md).
Checked in a fresh interpreter: freezing this one would keep the suite's garbage."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import gc, json
from fjernhjelp.cli.serve import FULL_COLLECTION_EVERY, _tune_garbage_collector
young = gc.get_threshold()[:2]
_tune_garbage_collector()
print(json.dumps({"frozen": gc.get_freeze_count(), "young": young,
                  "after": gc.get_threshold(), "every": FULL_COLLECTION_EVERY}))
"""


def test_serve_freezes_start_up_and_collects_the_old_generation_rarely() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stdout)
    assert found["frozen"] > 0
    # The young generations as CPython sets them; only the old one waits longer.
    assert found["after"] == [*found["young"], found["every"]]
    assert found["every"] > 10
