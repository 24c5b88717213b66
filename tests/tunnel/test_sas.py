"""The short authentication string (docs/tunnel.md §18): the vectors recomputed with bare
primitives, the word list's rules, both ends of real handshakes agreeing, and a middle
party with the server's powers ending up with different words."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import unicodedata
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fjernhjelp.i18n import catalogue
from fjernhjelp.tunnel import sas
from fjernhjelp.tunnel.handshake import AgentHandshake, SessionKeys, TechnicianHandshake, raw_public
from fjernhjelp.tunnel.replay import MemoryReplayCache
from fjernhjelp.tunnel.tickets import technician_key_hash
from tests.tunnel import sas_vectors
from tests.tunnel.helpers import MACHINE, World, closed_within, open_pair
from tests.tunnel.vectors import fixed

V = json.loads(sas_vectors.PATH.read_text(encoding="utf-8"))
H = bytes.fromhex
WORDS = sas_vectors.word_file().decode("utf-8").split("\n")[:-1]
ISSUED = 1_767_225_600
NOW = ISSUED + 5


# -- vectors ---------------------------------------------------------------------------


def test_the_files_are_what_the_one_word_list_builds() -> None:
    # After a deliberate change of the list: `python -m tests.tunnel.sas_vectors`.
    assert sas_vectors.PATH.read_text(encoding="utf-8") == sas_vectors.render()
    assert sas_vectors.JS_WORDS.read_text(encoding="utf-8") == sas_vectors.render_js()


def test_the_vectors_include_the_tunnel_handshake_and_both_ends_of_the_list() -> None:
    tunnel = json.loads((sas_vectors.PATH.parent / "tunnel-v1.json").read_text())
    hashes_ = {v["transcript_hash"] for v in V["vectors"]}
    assert tunnel["handshake"]["transcript_hash"] in hashes_
    used = {b for v in V["vectors"] for b in H(v["sas_bytes"])}
    assert {0, 255} <= used
    assert len(V["vectors"]) >= 5
    assert V["word_list"]["sha256"] == hashlib.sha256(sas_vectors.word_file()).hexdigest()


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


@pytest.mark.parametrize("vector", V["vectors"], ids=lambda v: v["note"])
def test_each_vector_recomputed_from_the_spec(vector: dict[str, object]) -> None:
    th, nonce = H(str(vector["transcript_hash"])), H(str(vector["nonce"]))
    label = b"fjernhjelp tunnel v1 sas commitment\x00"
    assert hashlib.sha256(label + nonce).hexdigest() == vector["commitment"]
    bits = _hkdf_sha256(th, nonce, b"fjernhjelp tunnel v1 sas", 3)
    assert bits.hex() == vector["sas_bytes"]
    assert vector["words"] == [WORDS[b] for b in bits]
    assert vector["text"] == " ".join(WORDS[b] for b in bits)
    value = f"{int.from_bytes(bits, 'big'):08d}"
    assert vector["digits"] == f"{value[:4]} {value[4:]}"
    # ... and the library agrees.
    assert list(sas.sas_words(th, nonce)) == vector["words"]
    assert sas.sas_digits(th, nonce) == vector["digits"]


def test_deterministic_and_bound_to_both_inputs() -> None:
    th, nonce = fixed("a transcript"), fixed("a nonce")
    assert sas.sas_words(th, nonce) == sas.sas_words(th, nonce)
    flipped_th = bytes([th[0] ^ 1]) + th[1:]
    flipped_nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    assert sas.sas_bytes(flipped_th, nonce) != sas.sas_bytes(th, nonce)
    assert sas.sas_bytes(th, flipped_nonce) != sas.sas_bytes(th, nonce)


@pytest.mark.parametrize(("th", "nonce"), [(b"x" * 31, b"n" * 32), (b"x" * 32, b"n" * 16)])
def test_wrong_sizes_are_refused(th: bytes, nonce: bytes) -> None:
    with pytest.raises(ValueError, match="must be"):
        sas.sas_words(th, nonce)


def test_every_byte_value_names_a_word_once() -> None:
    # No modulo: 256 words, one byte each; each word is reachable by exactly one value.
    assert sas.word_list() == tuple(WORDS)
    assert len(WORDS) == 256 == len(set(WORDS))


# -- the word list ----------------------------------------------------------------------

NORWEGIAN = "abcdefghijklmnopqrstuvwxyzæøå"
NUMBER_WORDS = {"en", "ett", "to", "tre", "fire", "fem", "seks", "sju", "syv", "åtte", "ni", "ti"}


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _sound(word: str) -> str:
    """A rough bokmål pronunciation: silent h/g/d before j, hv, ld/nd/rd, kj/tj, sj/skj,
    rs, soft g/k/sk before front vowels, double consonants."""
    k = word
    for spelling, sound in [
        ("skj", "ʃ"), ("sj", "ʃ"), ("kj", "ç"), ("tj", "ç"), ("hj", "j"), ("gj", "j"),
        ("hv", "v"), ("dj", "j"), ("lj", "j"), ("ld", "l"), ("nd", "n"), ("rd", "r"), ("rs", "ʃ"),
    ]:  # fmt: skip
        k = k.replace(spelling, sound)
    k = re.sub(r"sk(?=[iyø]|ei)", "ʃ", k)
    k = re.sub(r"g(?=[iy]|ei)", "j", k)
    k = re.sub(r"k(?=[iy]|ei)", "ç", k)
    return re.sub(r"(.)\1", r"\1", k)


def test_the_file_is_plain_lines() -> None:
    raw = sas_vectors.word_file()
    assert not raw.startswith(b"\xef\xbb\xbf") and raw.endswith(b"\n")
    assert b"\r" not in raw and b"\n\n" not in raw


def test_words_are_short_lowercase_bokmal_letters_in_nfc() -> None:
    for word in WORDS:
        assert re.fullmatch(r"[a-zæøå]{3,8}", word), word
        assert not set(word) & set("cqwxz"), word  # letters only loan words use
        assert unicodedata.normalize("NFC", word) == word
    assert not NUMBER_WORDS & set(WORDS)  # a word that is a number confuses the digits


def test_the_list_is_in_alphabetical_order() -> None:
    assert sorted(WORDS, key=lambda w: [NORWEGIAN.index(c) for c in w]) == WORDS


def test_no_two_words_are_one_edit_apart_in_spelling_or_sound() -> None:
    close = [
        (a, b)
        for i, a in enumerate(WORDS)
        for b in WORDS[i + 1 :]
        if _distance(a, b) < 2 or _distance(_sound(a), _sound(b)) < 2
    ]
    assert close == []


def test_the_sound_rules_catch_what_they_are_for() -> None:
    # The check above is only as good as these: words that sound alike must collide.
    assert _sound("hjul") == _sound("jul")
    assert _sound("land") == _sound("lann")
    assert _distance(_sound("skjære"), _sound("sjåre")) < 2


# -- the commitment and its reveal --------------------------------------------------------


def test_a_reveal_is_accepted_only_for_the_committed_nonce() -> None:
    nonce = fixed("committed")
    random_t = sas.commitment(nonce)
    assert sas.nonce_from_reveal(sas.reveal_message(nonce), random_t) == nonce
    with pytest.raises(sas.SasRevealInvalid, match="committed"):
        sas.nonce_from_reveal(sas.reveal_message(fixed("another")), random_t)


@pytest.mark.parametrize(
    "message",
    [
        None,
        {"type": "sysinfo", "nonce": "00" * 32},
        {"type": "sas-nonce"},
        {"type": "sas-nonce", "nonce": 5},
        {"type": "sas-nonce", "nonce": "AB" * 32},
        {"type": "sas-nonce", "nonce": "ab" * 31},
        {"type": "sas-nonce", "nonce": "ab" * 32, "words": "katt hund sau"},
    ],
)
def test_malformed_reveals_are_refused(message: object) -> None:
    with pytest.raises(sas.SasRevealInvalid):
        sas.nonce_from_reveal(message, sas.commitment(bytes.fromhex("ab" * 32)))


# -- real handshakes -----------------------------------------------------------------------


def _world() -> World:
    return World(
        server=Ed25519PrivateKey.from_private_bytes(fixed("sas server")),
        agent=Ed25519PrivateKey.from_private_bytes(fixed("sas agent")),
        ephemeral=X25519PrivateKey.from_private_bytes(fixed("sas technician ephemeral")),
    )


def _agent(world: World, identity: Ed25519PrivateKey, label: str) -> AgentHandshake:
    return AgentHandshake(
        server_key=world.server.public_key(),
        identity=identity,
        machine_id=MACHINE,
        replay_cache=MemoryReplayCache(),
        ephemeral=X25519PrivateKey.from_private_bytes(fixed(f"{label} ephemeral")),
        random=fixed(f"{label} random"),
    )


def _token(world: World, ephemeral: X25519PrivateKey, session_id: str) -> str:
    return world.token(
        session_id=session_id,
        issued_at=ISSUED,
        expires_at=ISSUED + 120,
        technician_key_sha256=technician_key_hash(raw_public(ephemeral)),
    )


def _agent_words(keys: SessionKeys, reveal: object) -> tuple[str, str, str]:
    """What the end user's client shows once the technician's reveal has arrived."""
    nonce = sas.nonce_from_reveal(reveal, keys.technician_random)
    return sas.sas_words(keys.transcript_hash, nonce)


def test_both_ends_of_a_handshake_show_the_same_words() -> None:
    world = _world()
    nonce = fixed("honest nonce")
    technician = TechnicianHandshake(
        ticket=_token(world, world.ephemeral, "sess-honest"),
        ephemeral=world.ephemeral,
        agent_identity=world.agent.public_key(),
        random=sas.commitment(nonce),
    )
    agent = _agent(world, world.agent, "honest agent")
    keys = technician.receive(agent.receive_hello(technician.hello(), NOW))
    assert agent.keys is not None
    assert agent.keys.technician_random == sas.commitment(nonce) == keys.technician_random
    assert _agent_words(agent.keys, sas.reveal_message(nonce)) == sas.sas_words(
        keys.transcript_hash, nonce
    )


async def test_both_ends_of_a_running_tunnel_show_the_same_words() -> None:
    nonce = sas.new_nonce()
    pair = await open_pair(technician_random=sas.commitment(nonce))
    try:
        await pair.technician.control.send_json(sas.reveal_message(nonce))
        async with asyncio.timeout(10):
            reveal = await pair.agent.control.recv_json()
        agent_nonce = sas.nonce_from_reveal(reveal, pair.agent.technician_random)
        agent_says = sas.sas_text(pair.agent.transcript_hash, agent_nonce)
        assert agent_says == sas.sas_text(pair.technician.transcript_hash, nonce)
        assert len(agent_says.split(" ")) == 3
    finally:
        await pair.technician.close()
        await closed_within(pair.agent)


@dataclass
class Spliced:
    """A middle party with the server's powers: it issues a ticket for its own key to
    the agent, lists its own identity key to the technician, and runs one handshake
    with each."""

    technician_keys: SessionKeys
    agent_keys: SessionKeys
    technician_hello: bytes


def _splice(seed: int, relay_commitment: bool, mitm_nonce: bytes) -> Spliced:
    world = _world()
    technician_nonce = fixed(f"spliced technician nonce {seed}")
    middle_identity = Ed25519PrivateKey.from_private_bytes(fixed(f"middle identity {seed}"))
    middle_ephemeral = X25519PrivateKey.from_private_bytes(fixed(f"middle ephemeral {seed}"))
    technician = TechnicianHandshake(
        ticket=_token(world, world.ephemeral, f"sess-t-{seed}"),
        ephemeral=world.ephemeral,
        agent_identity=middle_identity.public_key(),  # what the server lists
        random=sas.commitment(technician_nonce),
    )
    hello = technician.hello()
    # Middle party as the agent, towards the technician.
    as_agent = _agent(world, middle_identity, f"middle as agent {seed}")
    technician_keys = technician.receive(as_agent.receive_hello(hello, NOW))
    # Middle party as a technician, towards the agent, with a ticket it issued itself.
    as_technician = TechnicianHandshake(
        ticket=_token(world, middle_ephemeral, f"sess-a-{seed}"),
        ephemeral=middle_ephemeral,
        agent_identity=world.agent.public_key(),
        random=hello[38:70] if relay_commitment else sas.commitment(mitm_nonce),
    )
    agent = _agent(world, world.agent, f"real agent {seed}")
    as_technician.receive(agent.receive_hello(as_technician.hello(), NOW))
    assert agent.keys is not None
    return Spliced(technician_keys, agent.keys, hello)


SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_middle_party_relaying_the_technicians_nonce_gets_other_words(seed: int) -> None:
    # The nonce is the technician's on both sides; the transcripts differ (each end's
    # handshake has the middle party's ephemeral key in it), so the words do too.
    s = _splice(seed, relay_commitment=True, mitm_nonce=b"")
    technician_nonce = fixed(f"spliced technician nonce {seed}")
    technician_words = sas.sas_words(s.technician_keys.transcript_hash, technician_nonce)
    agent_words = _agent_words(s.agent_keys, sas.reveal_message(technician_nonce))
    assert technician_words != agent_words


@pytest.mark.parametrize("seed", SEEDS)
def test_a_middle_party_with_a_nonce_of_its_own_gets_other_words(seed: int) -> None:
    mitm_nonce = fixed(f"middle nonce {seed}")
    s = _splice(seed, relay_commitment=False, mitm_nonce=mitm_nonce)
    technician_nonce = fixed(f"spliced technician nonce {seed}")
    technician_words = sas.sas_words(s.technician_keys.transcript_hash, technician_nonce)
    assert _agent_words(s.agent_keys, sas.reveal_message(mitm_nonce)) != technician_words
    # Handing the agent the technician's nonce instead fails the commitment check.
    with pytest.raises(sas.SasRevealInvalid):
        _agent_words(s.agent_keys, sas.reveal_message(technician_nonce))


def test_why_the_nonce_is_secret_until_after_the_handshake() -> None:
    """Were the words computable from the transcript alone (here: a nonce the middle
    party knows), the middle party, answering the technician's HELLO after finishing
    with the agent, could try AGENT_HELLOs until the words match. Shown for the first
    word (2^8 tries on average); all three take 2^24, well under a minute."""
    known = bytes(32)
    s = _splice(0, relay_commitment=False, mitm_nonce=known)
    target = sas.sas_bytes(s.agent_keys.transcript_hash, known)[0]
    world = _world()
    middle_identity = Ed25519PrivateKey.from_private_bytes(fixed("middle identity 0"))
    for attempt in range(4096):
        grinding = AgentHandshake(
            server_key=world.server.public_key(),
            identity=middle_identity,
            machine_id=MACHINE,
            replay_cache=MemoryReplayCache(),
            ephemeral=X25519PrivateKey.from_private_bytes(fixed("middle as agent 0 ephemeral")),
            random=fixed(f"grinding {attempt}"),
        )
        grinding.receive_hello(s.technician_hello, NOW)
        assert grinding.keys is not None
        if sas.sas_bytes(grinding.keys.transcript_hash, known)[0] == target:
            break
    else:
        pytest.fail("no match in 4096 tries: the demonstration is wrong")


# -- messages ---------------------------------------------------------------------------------


def test_the_dialog_texts_exist_in_both_languages() -> None:
    texts = catalogue()
    for key in ("support.sas.read_aloud", "support.sas.compare"):
        assert all("{words}" in texts[key][lang] for lang in ("nb", "en")), key
    for key in ("support.sas.mismatch", "support.sas.mismatch_technician"):
        assert set(texts[key]) == {"nb", "en"}
    assert "lytte" in texts["support.sas.mismatch"]["nb"]
    assert "listening" in texts["support.sas.mismatch"]["en"]


async def test_a_deeply_nested_reveal_is_not_json_and_ends_nothing_else() -> None:
    # Found by fuzzing: a control message nested past the recursion limit escaped
    # recv_json as RecursionError, past the Support client's "bad reveal" handling
    # (which catches ValueError and ends the session as a mismatch).
    pair = await open_pair(technician_random=sas.commitment(sas.new_nonce()))
    try:
        await pair.technician.control.send(b"[" * 200_000)
        async with asyncio.timeout(10):
            with pytest.raises(ValueError, match="nested"):
                await pair.agent.control.recv_json()
        assert pair.agent.closed is None  # the tunnel itself is fine; the session decides
    finally:
        await pair.technician.close()
        await closed_within(pair.agent)
