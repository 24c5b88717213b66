"""The short fuzzing pass CI runs: every target on its seeds and a few hundred random
and mutated inputs (hypothesis), some of them with a memory bound per input, so that a
parser that starts crashing, hanging or allocating without bound shows in the normal
suite. The long runs are ``make fuzz`` (docs/SECURITY.md, "Protocol fuzzing")."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import Iterator

import pytest

from tests.fuzz.engine import check
from tests.fuzz.targets import TARGETS

EXAMPLES = 200
# tracemalloc makes every allocation 4-6 times dearer: fewer inputs with the bound.
TRACED_EXAMPLES = 25
# Per input, on top of what was allocated before it: the largest legitimate input
# (a 256 KiB tunnel message, a 64 KiB package, 1 MiB of RFB cut text) fits many times.
MEMORY_LIMIT = 48 * 1024 * 1024


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    logging.disable(logging.WARNING)  # the tunnel logs every refusal it makes
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", list(TARGETS))
def test_a_short_fuzzing_pass_finds_nothing(name: str) -> None:
    assert check(TARGETS[name], EXAMPLES) > EXAMPLES // 2
    tracemalloc.start()
    try:
        check(TARGETS[name], TRACED_EXAMPLES, MEMORY_LIMIT)
    finally:
        tracemalloc.stop()
