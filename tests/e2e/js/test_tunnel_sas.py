"""The browser's short authentication string (static/js/tunnel/sas.js, docs/tunnel.md
§18): every vector of sas-v1.json, the word list the page holds, and the words a page
technician and a Python agent show for one real tunnel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fjernhjelp.tunnel import sas
from tests.e2e.js.agent import AgentSide, echo

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

SAS = json.loads((Path(__file__).parents[2] / "data" / "vectors" / "sas-v1.json").read_text())

COMPUTE = """async (vectors) => {
  const { tunnel, bytes } = window.fjh;
  const out = [];
  for (const v of vectors) {
    const th = bytes.fromHex(v.transcript_hash), nonce = bytes.fromHex(v.nonce);
    out.push({
      commitment: bytes.toHex(await tunnel.sasCommitment(nonce)),
      sas_bytes: bytes.toHex(await tunnel.sasBytes(th, nonce)),
      words: await tunnel.sasWords(th, nonce),
      text: await tunnel.sasText(th, nonce),
      digits: await tunnel.sasDigits(th, nonce),
      reveal: tunnel.sasRevealMessage(nonce),
    });
  }
  return out;
}"""


def test_every_sas_vector_is_reproduced(tunnel_page) -> None:
    got = tunnel_page.evaluate(COMPUTE, SAS["vectors"])
    assert len(got) == len(SAS["vectors"])
    for mine, v in zip(got, SAS["vectors"], strict=True):
        assert mine == {
            "commitment": v["commitment"],
            "sas_bytes": v["sas_bytes"],
            "words": v["words"],
            "text": v["text"],
            "digits": v["digits"],
            "reveal": {"type": "sas-nonce", "nonce": v["nonce"]},
        }, v["note"]


def test_the_page_holds_the_one_word_list(tunnel_page) -> None:
    assert tunnel_page.evaluate("[...window.fjh.tunnel.SAS_WORDS_NB]") == list(sas.word_list())
    assert tunnel_page.evaluate("Object.isFrozen(window.fjh.tunnel.SAS_WORDS_NB)")


def test_wrong_sizes_are_refused_in_the_page(tunnel_page) -> None:
    got = tunnel_page.evaluate(
        """() => window.fjh.tunnel.sasWords(new Uint8Array(32), new Uint8Array(16))
              .then(() => 'accepted', (e) => e.name)"""
    )
    assert got == "TypeError"


def test_the_page_and_the_agent_show_the_same_words(tunnel_page, harness) -> None:
    agent = AgentSide(harness, {"echo": echo}, allowed={"echo"})
    public_key = tunnel_page.evaluate("window.fjh.newEphemeral()")
    info = agent.issue(public_key)
    page_words = tunnel_page.evaluate(
        """async (info) => {
          const { tunnel, bytes } = window.fjh;
          const nonce = tunnel.sasNonce();
          const transport = await tunnel.WebSocketTransport.open(info.relay_url, {
            firstMessage: JSON.stringify({ role: "technician", token: info.relay_token }),
          });
          window.tun = await tunnel.connect(transport, {
            ticket: info.ticket,
            ephemeral: window.ephemeral,
            agentIdentity: bytes.fromBase64(info.agent_identity_key),
            random: await tunnel.sasCommitment(nonce),
          });
          await window.tun.control.sendJSON(tunnel.sasRevealMessage(nonce));
          return tunnel.sasText(window.tun.transcriptHash, nonce);
        }""",
        info,
    )
    harness.run(agent.settled())

    async def revealed() -> object:
        async with asyncio.timeout(10):
            while not agent.received_control:  # noqa: ASYNC110 - the agent appends
                await asyncio.sleep(0.02)
        return agent.received_control[0]

    reveal = harness.run(revealed())
    assert agent.tunnel is not None
    nonce = sas.nonce_from_reveal(reveal, agent.tunnel.technician_random)
    assert sas.sas_text(agent.tunnel.transcript_hash, nonce) == page_words
    tunnel_page.evaluate("window.tun.close()")
    harness.run(agent.wait_closed())
