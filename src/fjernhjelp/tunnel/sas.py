"""The short authentication string (docs/tunnel.md §18): three words both ends show and
the two people compare over the telephone.

In a Support session neither end has an enrolled key, so the server could issue tickets
and list keys of its own and sit in the middle of the tunnel. The words are derived from
the handshake transcript and a nonce the technician commits to in HELLO and reveals only
after the handshake; two tunnels spliced by a middle party end up with different words,
except by a 2^-24 chance per attempt.

Why the nonce, and why a transcript hash alone is not enough: in the technician's
tunnel the middle party plays the agent and writes AGENT_HELLO *after* it has seen the
technician's HELLO, and it can have finished its own tunnel to the real agent first. With
words from the transcript alone it would then try random AGENT_HELLOs (``random_a`` is 32
free bytes) until the words match the agent's: 2^24 hashes, well under a second. The
technician therefore puts SHA-256 of a secret nonce where HELLO's ``random_t`` goes (to
everyone else still 32 random-looking bytes: the wire format does not change) and keys
the derivation with the nonce, which it sends inside the tunnel only once AGENT_HELLO has
arrived. The middle party has to fix its AGENT_HELLO without knowing the technician's
words, and in the agent's tunnel the agent's fresh ``eph_a``/``random_a`` come after the
middle party's HELLO has fixed the nonce it will have to reveal.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from functools import cache
from importlib import resources

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_SIZE = 32
WORD_BITS = 8  # 256 words: one byte per word, so no index is more likely than another
WORD_COUNT = 1 << WORD_BITS
WORDS_SHOWN = 3
SAS_BYTES = WORDS_SHOWN * WORD_BITS // 8  # 24 bits: a middle party matches by 1 in 2^24

COMMITMENT_LABEL = b"fjernhjelp tunnel v1 sas commitment\x00"
SAS_INFO = b"fjernhjelp tunnel v1 sas"
REVEAL_TYPE = "sas-nonce"  # the control message that reveals the nonce
WORD_LIST = "sas_words_nb.txt"

_HEX_NONCE = re.compile(r"[0-9a-f]{64}")


class SasRevealInvalid(ValueError):
    """The revealed nonce is malformed or is not the one HELLO committed to: show no
    words and end the session; someone may be in the middle."""


@cache
def word_list() -> tuple[str, ...]:
    """The 256 words, in file order: word i is line i + 1 of ``sas_words_nb.txt``."""
    text = resources.files("fjernhjelp.tunnel").joinpath(WORD_LIST).read_text(encoding="utf-8")
    words = tuple(text.splitlines())
    # The list is part of the protocol: both ends must have exactly this one.
    if len(words) != WORD_COUNT or len(set(words)) != WORD_COUNT:
        raise RuntimeError(f"{WORD_LIST} must hold {WORD_COUNT} distinct words")
    if any(unicodedata.normalize("NFC", word) != word for word in words):
        raise RuntimeError(f"{WORD_LIST} must be NFC")
    return words


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_SIZE)


def commitment(nonce: bytes) -> bytes:
    """What the technician sends as HELLO's ``random_t``: SHA-256(label || nonce)."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the nonce must be {NONCE_SIZE} bytes")
    return hashlib.sha256(COMMITMENT_LABEL + nonce).digest()


def sas_bytes(transcript_hash: bytes, nonce: bytes) -> bytes:
    """HKDF-SHA256(IKM = TH, salt = nonce, info = SAS_INFO, L = 3).

    The nonce is the salt, i.e. the HMAC key of HKDF-Extract: until it is revealed
    nobody can compute the words of any transcript."""
    if len(transcript_hash) != 32:
        raise ValueError("the transcript hash must be 32 bytes")
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the nonce must be {NONCE_SIZE} bytes")
    return HKDF(hashes.SHA256(), SAS_BYTES, salt=nonce, info=SAS_INFO).derive(transcript_hash)


def sas_words(transcript_hash: bytes, nonce: bytes) -> tuple[str, str, str]:
    """Three words: byte i of ``sas_bytes`` indexes the word list."""
    words = word_list()
    first, second, third = sas_bytes(transcript_hash, nonce)
    return words[first], words[second], words[third]


def sas_text(transcript_hash: bytes, nonce: bytes) -> str:
    """The words as shown and read aloud: separated by single spaces."""
    return " ".join(sas_words(transcript_hash, nonce))


def sas_digits(transcript_hash: bytes, nonce: bytes) -> str:
    """The same 24 bits as eight decimal digits, "1234 5678" (the value as a big-endian
    number, 0 to 16 777 215, zero-padded): for a screen reader or a user who would
    rather compare digits. Both ends show both forms; they never disagree."""
    value = int.from_bytes(sas_bytes(transcript_hash, nonce), "big")
    digits = f"{value:08d}"
    return f"{digits[:4]} {digits[4:]}"


def reveal_message(nonce: bytes) -> dict[str, str]:
    """The technician's control message that reveals the nonce, sent once the tunnel
    is open (after the key-confirming PING), before any OPEN."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"the nonce must be {NONCE_SIZE} bytes")
    return {"type": REVEAL_TYPE, "nonce": nonce.hex()}


def nonce_from_reveal(message: object, technician_random: bytes) -> bytes:
    """The agent's check of a reveal against HELLO's ``random_t``; the nonce, or
    SasRevealInvalid. Without this check a middle party could reveal any nonce it likes
    and search for one that gives the words it needs."""
    if not isinstance(message, dict) or message.get("type") != REVEAL_TYPE:
        raise SasRevealInvalid("not a SAS nonce message")
    text = message.get("nonce")
    if set(message) != {"type", "nonce"} or not isinstance(text, str):
        raise SasRevealInvalid("the SAS nonce message has other fields")
    if not _HEX_NONCE.fullmatch(text):
        raise SasRevealInvalid("the nonce is not 64 lowercase hex digits")
    nonce = bytes.fromhex(text)
    if not hmac.compare_digest(commitment(nonce), technician_random):
        raise SasRevealInvalid("the nonce is not the one HELLO committed to")
    return nonce
