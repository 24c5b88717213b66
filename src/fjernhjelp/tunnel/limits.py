"""Every size and count the tunnel protocol bounds, in one place (docs/tunnel.md, "Limits").

These are part of the wire protocol: both ends must agree on them, so they are constants,
not settings. Timers (keep-alive, handshake timeout) are local choices and live in
``TunnelOptions``.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1

# Tickets
MAX_TICKET_TOKEN = 4096  # bytes of the ASCII token
MAX_ID = 64  # session, machine, grant, organisation and technician ids
MAX_NAME = 200  # display names and the agreement reference, in characters
MAX_TICKET_LIFETIME = 15 * 60  # seconds from issued_at to expires_at
TICKET_CLOCK_LEEWAY = 60  # seconds of clock difference tolerated at either end

# Handshake
KEY_SIZE = 32  # X25519 public keys, Ed25519 public keys, randoms, hashes
SIGNATURE_SIZE = 64

# Records: one transport message each.
RECORD_HEADER = 8  # the 64-bit counter
TAG_SIZE = 16
MAX_PLAINTEXT = 65536  # one mux frame
MAX_RECORD = RECORD_HEADER + MAX_PLAINTEXT + TAG_SIZE
MIN_RECORD = RECORD_HEADER + TAG_SIZE

# Mux frames (inside a record's plaintext)
FRAME_HEADER = 6  # type, flags, stream id
MAX_FRAGMENT = MAX_PLAINTEXT - FRAME_HEADER
MAX_OPEN_REQUEST = 4096  # the JSON of an OPEN frame
MAX_REASON = 200  # UTF-8 bytes of a close reason
MAX_MESSAGE = 256 * 1024  # one reassembled message
MAX_STREAMS = 32  # open streams per tunnel, the control stream included

# Flow control: each DATA frame costs its payload plus a fixed overhead, so a flood of
# tiny messages is bounded in memory as well as a few large ones.
FRAME_COST = 64
INITIAL_WINDOW = 512 * 1024  # per stream and direction; at least one whole message
CREDIT_THRESHOLD = INITIAL_WINDOW // 4  # grant credit back once this much is consumed
