"""WeCom's side of callback crypto: signing and encrypting what WeCom sends, decrypting passive replies.

Written from the protocol (docs/WECOM_PROTOCOL.md sections 1-3), not from the platform's own crypto, on
purpose: a simulator that shared our implementation would mirror its bugs and every test would still pass.

- msg_signature = SHA1 hex of the sorted [token, timestamp, nonce, Encrypt], concatenated.
- Encrypt = base64(AES-256-CBC(key, IV = key[:16], PKCS#7 to 32-byte blocks of
  16 random bytes + 4-byte big-endian message length + message + receiveid)),
  where key = base64 of EncodingAESKey + "=".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

RANDOM_PREFIX_BYTES = 16
LENGTH_BYTES = 4
# WeCom pads to 32-byte blocks, not AES's 16: a pad of 17..32 bytes is legal (vector A2 has 22).
PAD_BLOCK_BITS = 256


class CryptoError(Exception):
    """Something WeCom would refuse to read (a passive reply with a bad signature, padding or receiveid)."""


def aes_key_of(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key an EncodingAESKey (43 base64 characters, no padding) stands for."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("EncodingAESKey is not 43 characters of base64") from exc
    if len(encoding_aes_key) != 43 or len(key) != 32:
        raise ValueError("EncodingAESKey must be 43 characters decoding to 32 bytes")
    return key


class CallbackCrypto:
    """The crypto WeCom applies for one receiver: (callback token, EncodingAESKey, receiveid = the corp id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        self.token = token
        self.receive_id = receive_id
        self._key = aes_key_of(encoding_aes_key)

    def __repr__(self) -> str:
        return f"CallbackCrypto(receive_id={self.receive_id!r})"  # never the token or key

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    # -- signatures -----------------------------------------------------------------------------------

    def sign(self, timestamp: str | int, nonce: str | int, encrypted: str) -> str:
        joined = "".join(sorted([self.token, str(timestamp), str(nonce), encrypted]))
        # SHA-1 is the hash WeCom specifies for msg_signature.
        return hashlib.sha1(joined.encode("utf-8")).hexdigest()  # noqa: S324

    def check_signature(self, signature: str, timestamp: str | int, nonce: str | int, encrypted: str) -> None:
        if signature.lower() != self.sign(timestamp, nonce, encrypted):
            raise CryptoError("signature mismatch")

    # -- payloads -------------------------------------------------------------------------------------

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        """The Encrypt (or echostr) value for `message`; a fixed random_prefix makes it reproducible."""
        prefix = os.urandom(RANDOM_PREFIX_BYTES) if random_prefix is None else random_prefix
        if len(prefix) != RANDOM_PREFIX_BYTES:
            raise ValueError(f"random_prefix must be {RANDOM_PREFIX_BYTES} bytes")
        content = prefix + len(message).to_bytes(LENGTH_BYTES, "big") + message + self.receive_id.encode("utf-8")
        padder = padding.PKCS7(PAD_BLOCK_BITS).padder()
        padded = padder.update(content) + padder.finalize()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside an Encrypt value; CryptoError when WeCom could not have accepted it."""
        try:
            ciphertext = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError("Encrypt is not base64") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise CryptoError("ciphertext is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        # Stricter than WeCom's own sample (which trusts the last byte): our replies are padded to 32 too.
        unpadder = padding.PKCS7(PAD_BLOCK_BITS).unpadder()
        try:
            content = unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise CryptoError("bad padding") from exc
        header = RANDOM_PREFIX_BYTES + LENGTH_BYTES
        if len(content) < header:
            raise CryptoError("too short for the random prefix and length")
        length = int.from_bytes(content[RANDOM_PREFIX_BYTES:header], "big")
        if header + length > len(content):
            raise CryptoError("message length out of range")
        message, receive_id = content[header : header + length], content[header + length :]
        if receive_id != self.receive_id.encode("utf-8"):
            raise CryptoError(f"receiveid {receive_id!r} is not {self.receive_id!r}")
        return message
