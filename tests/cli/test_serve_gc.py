"""`fjernhjelp serve` keeps what start-up left out of garbage collections (cli/serve.py;
the why and the figures in docs/BENCHMARKS.md). Checked in a fresh interpreter: freezing
this one would keep the suite's garbage for good."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import gc, json
from fjernhjelp.cli.serve import _tune_garbage_collector
before = gc.get_threshold()
_tune_garbage_collector()
print(json.dumps({"frozen": gc.get_freeze_count(), "before": before, "after": gc.get_threshold()}))
"""


def test_serve_freezes_what_start_up_left_and_keeps_the_thresholds() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(out.stdout)
    assert found["frozen"] > 0
    # Full collections as often as CPython's defaults say: ended links' cycles are freed.
    assert found["after"] == found["before"]
