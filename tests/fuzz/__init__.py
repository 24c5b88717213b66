"""Protocol fuzzing: one target per parser that reads bytes from the other side.

Why here and not in a top-level ``fuzz/`` package: the targets build their seeds and keys
from the test vectors (``tests/data/vectors``) and share the test helpers, the short pass
that CI runs is an ordinary test in this folder, and ``make lint`` already checks
``tests/``. Nothing here ships in the wheel, as nothing under ``tests/`` does.

A target is a plain function taking ``bytes``: it feeds them to the parser and fails
(raises anything but the refusal the specification names, or AssertionError) when the
parser crashes, hangs, accepts what it must refuse, or closes the tunnel with the wrong
code. ``python -m tests.fuzz`` runs them (``make fuzz``); ``targets.TARGETS`` lists them.
"""
