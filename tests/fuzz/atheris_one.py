"""One target under atheris, in its own process (libFuzzer exits when it is done):
``python -m tests.fuzz.atheris_one NAME CORPUS [libFuzzer flags]``."""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["fjernhjelp"]):
    from tests.fuzz.targets import TARGETS


def main() -> None:
    target = TARGETS[sys.argv[1]]
    logging.disable(logging.CRITICAL)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
