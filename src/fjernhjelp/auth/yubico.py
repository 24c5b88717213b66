"""Yubico OTP validated locally, without a validation server.

We own this (about a hundred lines on top of ``cryptography``) because the public
validation service would put a third party in every login and the self-hosted KSM
stack is a separate daemon; the format is small and fully specified:

    OTP = modhex(public id, 0..16 bytes) || modhex(AES-128-ECB(key, token))
    token (16 bytes, little-endian fields):
        private id (6) | counter (2) | timestamp low (2) | timestamp high (1)
        | session use (1) | random (2) | CRC-16 (2)

The CRC-16 (reflected polynomial 0x8408, initial 0xffff) over all 16 bytes leaves the
residue 0xf0b8. A token is accepted only when its (counter, session use) is strictly
greater than the last one accepted for the key; the caller stores that atomically.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MODHEX = "cbdefghijklnrtuv"
_MODHEX_VALUE = {c: i for i, c in enumerate(MODHEX)}
TOKEN_CHARS = 32
MAX_PUBLIC_ID_CHARS = 32
CRC_RESIDUE = 0xF0B8
AES_KEY_BYTES = 16
PRIVATE_ID_BYTES = 6


class YubicoOTPError(ValueError):
    """The OTP is malformed or does not decrypt to a valid token for this key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class YubicoSecretError(ValueError):
    """The AES key or the private id, as typed, is not hex of the right length."""


@dataclass(frozen=True, slots=True)
class Token:
    private_id: bytes
    counter: int
    timestamp: int
    session_use: int
    random: int

    def position(self) -> tuple[int, int]:
        return (self.counter, self.session_use)


def modhex_decode(text: str) -> bytes:
    if len(text) % 2:
        raise YubicoOTPError("modhex has an odd number of characters")
    try:
        nibbles = [_MODHEX_VALUE[c] for c in text]
    except KeyError as exc:
        raise YubicoOTPError("not modhex") from exc
    return bytes(hi << 4 | lo for hi, lo in zip(nibbles[::2], nibbles[1::2], strict=True))


def modhex_encode(data: bytes) -> str:
    return "".join(MODHEX[b >> 4] + MODHEX[b & 0x0F] for b in data)


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def parse_secret(aes_key_hex: str, private_id_hex: str) -> tuple[bytes, bytes]:
    """The key's AES key and private id from the hex the personalisation tool shows
    (spaces between the groups allowed). Raises YubicoSecretError."""
    try:
        aes_key = bytes.fromhex(aes_key_hex.replace(" ", ""))
        private_id = bytes.fromhex(private_id_hex.replace(" ", ""))
    except ValueError as exc:
        raise YubicoSecretError("not hex") from exc
    if len(aes_key) != AES_KEY_BYTES or len(private_id) != PRIVATE_ID_BYTES:
        raise YubicoSecretError("the AES key is 16 bytes and the private id 6")
    return aes_key, private_id


def public_id_of(otp: str) -> str:
    """The public-id part of an OTP as typed, without checking the rest: what names the
    key when asking whether it is already enrolled (split_otp judges the whole OTP)."""
    return otp.strip().lower()[:-TOKEN_CHARS]


def split_otp(otp: str) -> tuple[str, str]:
    """(public id, encrypted token), both modhex. Raises on anything malformed."""
    otp = otp.strip().lower()
    if not TOKEN_CHARS <= len(otp) <= TOKEN_CHARS + MAX_PUBLIC_ID_CHARS:
        raise YubicoOTPError("wrong length for a Yubico OTP")
    if any(c not in _MODHEX_VALUE for c in otp):
        raise YubicoOTPError("not modhex")
    return otp[:-TOKEN_CHARS], otp[-TOKEN_CHARS:]


def decrypt_token(aes_key: bytes, private_id: bytes, token_modhex: str) -> Token:
    if len(aes_key) != AES_KEY_BYTES or len(private_id) != PRIVATE_ID_BYTES:
        raise ValueError("Yubico AES key is 16 bytes and private id 6 bytes")
    ciphertext = modhex_decode(token_modhex)
    # ECB is what the YubiKey uses for its single 16-byte block; it is not our choice.
    decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()  # noqa: S305
    plain = decryptor.update(ciphertext) + decryptor.finalize()
    if crc16(plain) != CRC_RESIDUE:
        raise YubicoOTPError("checksum does not match (wrong key or altered OTP)")
    if not hmac.compare_digest(plain[:6], private_id):
        raise YubicoOTPError("private id does not match")
    return Token(
        private_id=plain[:6],
        counter=int.from_bytes(plain[6:8], "little"),
        timestamp=int.from_bytes(plain[8:11], "little"),
        session_use=plain[11],
        random=int.from_bytes(plain[12:14], "little"),
    )


def encrypt_token(aes_key: bytes, token: Token) -> str:
    """Build an OTP token as a YubiKey would; used by tests and the demo only."""
    body = (
        token.private_id
        + token.counter.to_bytes(2, "little")
        + token.timestamp.to_bytes(3, "little")
        + bytes([token.session_use])
        + token.random.to_bytes(2, "little")
    )
    crc = (~crc16(body)) & 0xFFFF
    plain = body + crc.to_bytes(2, "little")
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305
    return modhex_encode(encryptor.update(plain) + encryptor.finalize())
