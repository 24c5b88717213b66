"""The chat's wire format: one JSON message ``{"text": str, "at": str}`` a channel
message, both ways (``web/static/js/chat.js`` on the technician's side), with its limits.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

MAX_TEXT = 4000  # characters, as the console's chat.js
MAX_AT = 64
# A message longer than this in bytes cannot hold MAX_TEXT characters of UTF-8 (4 bytes
# each at most, 6 when JSON-escaped) plus its time; refuse it before parsing.
MAX_RAW = MAX_TEXT * 6 + MAX_AT + 64


class ChatRefusal(ValueError):
    """An incoming message that is not a chat message; ``code`` says why."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def parse_message(raw: bytes) -> str:
    """The text of one message from the technician; raises ChatRefusal."""
    if len(raw) > MAX_RAW:
        raise ChatRefusal("too_long")
    try:
        message = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's limit fits in MAX_RAW.
        raise ChatRefusal("not_json") from None
    if not isinstance(message, dict):
        raise ChatRefusal("not_object")
    text, at = message.get("text"), message.get("at")
    if not isinstance(text, str) or not text.strip():
        raise ChatRefusal("bad_text")
    if len(text) > MAX_TEXT:
        raise ChatRefusal("too_long")
    if not isinstance(at, str) or len(at) > MAX_AT:
        raise ChatRefusal("bad_at")
    return text


def message_for(text: str) -> bytes:
    at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"text": text[:MAX_TEXT], "at": at}, ensure_ascii=False).encode()
