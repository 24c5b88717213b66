"""Every text exists in bokmål and English, and every key a template uses exists."""

from __future__ import annotations

import re
from pathlib import Path

from fjernhjelp.i18n import LANGUAGES, Translator, catalogue, negotiate

SRC = Path(__file__).parents[2] / "src" / "fjernhjelp"


def test_every_message_has_both_languages() -> None:
    missing = [k for k, v in catalogue().items() if set(v) != set(LANGUAGES) or not all(v.values())]
    assert missing == []


def test_every_literal_key_used_in_templates_and_code_exists() -> None:
    used: set[str] = set()
    for path in list((SRC / "web" / "templates").glob("*.html")) + list(SRC.rglob("*.py")):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""", path.read_text()))
    unknown = sorted(k for k in used if k not in catalogue())
    assert unknown == []


def test_placeholders_agree_between_languages() -> None:
    for key, texts in catalogue().items():
        fields = {lang: set(re.findall(r"{(\w+)}", text)) for lang, text in texts.items()}
        assert fields["nb"] == fields["en"], key


def test_language_negotiation() -> None:
    assert negotiate(None, None, "en-GB,en;q=0.9", "nb") == "en"
    assert negotiate(None, None, "nn-NO", "en") == "nb"
    assert negotiate("en", "nb", "nb", "nb") == "en"
    assert negotiate(None, None, "de", "nb") == "nb"
    assert Translator("xx").language == "nb"


def test_every_way_the_server_cuts_a_session_has_a_sentence() -> None:
    """The console shows why a running session was cut, in words, for every reason the
    server or the relay can give: each revocation kind, and the server's own cuts."""
    from fjernhjelp.portal.revocations import RevocationKind

    server_cuts = {"server_stopping", "machine_removed", "relay_refused", "generic"}
    wanted = {f"session.cut.{kind.value}" for kind in RevocationKind}
    wanted |= {f"session.cut.{kind}" for kind in server_cuts}
    assert sorted(k for k in wanted if k not in catalogue()) == []
    # No raw close code or reason reaches the chat panel: its texts take a sentence only.
    assert "session.chat.ended" not in catalogue()
