"""Builds the SAS test vectors (tests/data/vectors/sas-v1.json) and the browser's copy
of the word list (web/static/js/tunnel/sas_words_nb.js) from their one source,
src/fjernhjelp/tunnel/sas_words_nb.txt. test_sas.py checks both files are what this
renders; after a deliberate change to the list (a protocol change) run:

    .venv/bin/python -m tests.tunnel.sas_vectors
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from itertools import count
from pathlib import Path
from typing import Any

from fjernhjelp.tunnel import sas
from tests.tunnel import vectors

ROOT = Path(__file__).parents[2]
PATH = ROOT / "tests" / "data" / "vectors" / "sas-v1.json"
JS_WORDS = ROOT / "src" / "fjernhjelp" / "web" / "static" / "js" / "tunnel" / "sas_words_nb.js"


def word_file() -> bytes:
    return resources.files("fjernhjelp.tunnel").joinpath(sas.WORD_LIST).read_bytes()


def _entry(note: str, transcript_hash: bytes, nonce: bytes) -> dict[str, Any]:
    return {
        "note": note,
        "transcript_hash": transcript_hash.hex(),
        "nonce": nonce.hex(),
        "commitment": sas.commitment(nonce).hex(),
        "sas_bytes": sas.sas_bytes(transcript_hash, nonce).hex(),
        "words": list(sas.sas_words(transcript_hash, nonce)),
        "text": sas.sas_text(transcript_hash, nonce),
        "digits": sas.sas_digits(transcript_hash, nonce),
    }


def _first_nonce_giving(transcript_hash: bytes, index: int) -> bytes:
    """A fixed nonce whose SAS uses word ``index``: the list's ends, so an implementation
    with a list off by one, or in another order, fails a vector."""
    for n in count():
        nonce = vectors.fixed(f"sas nonce {n}")
        if index in sas.sas_bytes(transcript_hash, nonce):
            return nonce
    raise AssertionError("unreachable")


def build() -> dict[str, Any]:
    tunnel = json.loads(vectors.PATH.read_text(encoding="utf-8"))
    handshake_th = bytes.fromhex(tunnel["handshake"]["transcript_hash"])
    other_th = vectors.fixed("sas transcript hash")
    entries = [
        _entry(
            "the transcript hash of tunnel-v1.json's handshake",
            handshake_th,
            vectors.fixed("sas nonce"),
        ),
        _entry("the same nonce, another transcript", other_th, vectors.fixed("sas nonce")),
        _entry("the same transcript, another nonce", handshake_th, vectors.fixed("sas nonce 2")),
        _entry("all zero", bytes(32), bytes(32)),
        _entry("all ones", b"\xff" * 32, b"\xff" * 32),
        _entry("uses the first word", other_th, _first_nonce_giving(other_th, 0)),
        _entry("uses the last word", other_th, _first_nonce_giving(other_th, 255)),
    ]
    return {
        "description": (
            "fjernhjelp tunnel v1 short authentication string (docs/tunnel.md §18). Hex "
            "unless noted. commitment = SHA-256('fjernhjelp tunnel v1 sas commitment\\x00' "
            "|| nonce), sent as HELLO's random_t; sas_bytes = HKDF-SHA256(IKM = "
            "transcript_hash, salt = nonce, info = 'fjernhjelp tunnel v1 sas', L = 3); word "
            "i = line sas_bytes[i] + 1 of the word list; digits = sas_bytes as a big-endian "
            "number, 8 digits, '1234 5678'. Fixed inputs are SHA-256 of 'fjernhjelp tunnel "
            "test vector: <label>'."
        ),
        "word_list": {
            "file": "src/fjernhjelp/tunnel/sas_words_nb.txt",
            "count": len(sas.word_list()),
            "sha256": hashlib.sha256(word_file()).hexdigest(),
        },
        "vectors": entries,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def render_js() -> str:
    words = ",\n".join(f"  {json.dumps(word, ensure_ascii=False)}" for word in sas.word_list())
    return (
        "// Generated from src/fjernhjelp/tunnel/sas_words_nb.txt by\n"
        "// `python -m tests.tunnel.sas_vectors`; tests/tunnel/test_sas.py checks it is\n"
        "// still that file. Edit the .txt (a protocol change), never this.\n"
        f"export const SAS_WORDS_NB = Object.freeze([\n{words},\n]);\n"
    )


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    JS_WORDS.write_text(render_js(), encoding="utf-8")
    print(f"wrote {PATH} and {JS_WORDS}")
