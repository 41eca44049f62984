"""WeCom callback crypto (WXBizMsgCrypt equivalent): signatures, AES payloads, the XML envelope.

Facts and test vectors: docs/WECOM_PROTOCOL.md sections 1-3.
"""

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from xml.etree.ElementTree import ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree as SafeElementTree

# WeCom pads to 32-byte blocks, not AES's 16: pad bytes 17..32 are legal (vector A2 has 22).
_PAD_BLOCK = 32
_RANDOM_LEN = 16
_AES_KEY_PATTERN = re.compile(r"[A-Za-z0-9]{43}")


# What expat/defusedxml raise for hostile input: ParseError, DefusedXmlException (a
# ValueError), LookupError for an unknown declared encoding, TypeError for non-bytes.
_XML_ERRORS = (ParseError, ValueError, LookupError, TypeError)


class WeComCryptoError(Exception):
    """A callback that cannot be trusted; `code` is Tencent's WXBizMsgCrypt code, `reason` is loggable."""

    VALIDATE_SIGNATURE = -40001
    PARSE_XML = -40002
    ILLEGAL_AES_KEY = -40004
    VALIDATE_RECEIVE_ID = -40005
    ENCRYPT_AES = -40006
    DECRYPT_AES = -40007
    DECODE_BASE64 = -40010

    def __init__(self, code: int, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def validate_encoding_aes_key(key: str) -> bytes:
    """Return the 32-byte AES key for an EncodingAESKey, or raise ValueError saying what is wrong."""
    if not isinstance(key, str) or not _AES_KEY_PATTERN.fullmatch(key):
        raise ValueError("EncodingAESKey must be exactly 43 characters of [A-Za-z0-9]")
    try:
        aes_key = base64.b64decode(key + "=", validate=True)
    except binascii.Error as exc:
        raise ValueError("EncodingAESKey is not valid base64") from exc
    if len(aes_key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return aes_key


def _as_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts callbacks for one (token, EncodingAESKey, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        try:
            self._aes_key = validate_encoding_aes_key(encoding_aes_key)
        except ValueError as exc:
            raise WeComCryptoError(WeComCryptoError.ILLEGAL_AES_KEY, str(exc)) from None
        self._token = token
        self.receive_id = receive_id
        self._receive_id_bytes = receive_id.encode("utf-8")

    def __repr__(self) -> str:
        # Never show the token or key: reprs end up in logs and tracebacks.
        return f"WeComCrypto(receive_id={self.receive_id!r})"

    # -- signatures ---------------------------------------------------------------------------

    def signature(self, timestamp, nonce, encrypted) -> str:
        parts = sorted([self._token, _as_text(timestamp), _as_text(nonce), _as_text(encrypted)])
        # SHA-1 is what WeCom mandates for msg_signature; we cannot choose another hash.
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()  # noqa: S324

    def verify_signature(self, msg_signature, timestamp, nonce, encrypted) -> None:
        expected = self.signature(timestamp, nonce, encrypted)
        given = _as_text(msg_signature).lower().encode("utf-8", "replace")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise WeComCryptoError(WeComCryptoError.VALIDATE_SIGNATURE, "signature mismatch")

    # -- payloads -----------------------------------------------------------------------------

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._aes_key), modes.CBC(self._aes_key[:16]))

    def decrypt(self, encrypted_b64: str) -> bytes:
        """Return the message bytes of one Encrypt/echostr value; only WeComCryptoError escapes."""
        ciphertext = _strict_b64decode(encrypted_b64)
        if not ciphertext or len(ciphertext) % 16:
            raise WeComCryptoError(WeComCryptoError.DECRYPT_AES, "ciphertext length is not a multiple of 16")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= _PAD_BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise WeComCryptoError(WeComCryptoError.DECRYPT_AES, "invalid padding")
        content = padded[:-pad]
        header_len = _RANDOM_LEN + 4
        if len(content) < header_len:
            raise WeComCryptoError(WeComCryptoError.DECRYPT_AES, "plaintext too short")
        (msg_len,) = struct.unpack(">I", content[_RANDOM_LEN:header_len])
        if msg_len > len(content) - header_len:
            raise WeComCryptoError(WeComCryptoError.DECRYPT_AES, "message length out of range")
        message = content[header_len : header_len + msg_len]
        receive_id = content[header_len + msg_len :]
        if not hmac.compare_digest(receive_id, self._receive_id_bytes):
            raise WeComCryptoError(WeComCryptoError.VALIDATE_RECEIVE_ID, "receive id mismatch")
        return message

    def encrypt(self, plaintext: bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt message bytes (str is UTF-8 encoded); a fixed random_prefix gives deterministic output."""
        if isinstance(plaintext, str):
            plaintext = plaintext.encode("utf-8")
        if random_prefix is None:
            random_prefix = secrets.token_bytes(_RANDOM_LEN)
        if len(random_prefix) != _RANDOM_LEN:
            raise ValueError("random_prefix must be 16 bytes")
        content = random_prefix + struct.pack(">I", len(plaintext)) + plaintext + self._receive_id_bytes
        pad = _PAD_BLOCK - len(content) % _PAD_BLOCK
        content += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(content) + encryptor.finalize()).decode("ascii")

    # -- callback flows -----------------------------------------------------------------------

    def verify_url(self, msg_signature, timestamp, nonce, echostr) -> str:
        """Answer WeCom's GET URL verification: the decrypted echostr, to be returned verbatim."""
        self.verify_signature(msg_signature, timestamp, nonce, echostr)
        try:
            return self.decrypt(echostr).decode("utf-8")
        except UnicodeDecodeError:
            raise WeComCryptoError(WeComCryptoError.DECRYPT_AES, "echostr is not UTF-8") from None

    def decrypt_callback(self, msg_signature, timestamp, nonce, body: bytes) -> bytes:
        """Verify and decrypt a POSTed callback envelope; returns the plaintext message XML bytes."""
        encrypted = _envelope_encrypt_field(body)
        self.verify_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)


def _strict_b64decode(value) -> bytes:
    try:
        if isinstance(value, str):
            value = value.encode("ascii")
        if not isinstance(value, bytes | bytearray):
            raise TypeError
        return base64.b64decode(value, validate=True)
    except (binascii.Error, UnicodeEncodeError, TypeError, ValueError):
        raise WeComCryptoError(WeComCryptoError.DECODE_BASE64, "invalid base64") from None


def _envelope_encrypt_field(body) -> str:
    try:
        # forbid_dtd: a callback never needs one, and DTDs are how entity bombs get in.
        root = SafeElementTree.fromstring(body, forbid_dtd=True)
    except _XML_ERRORS:
        raise WeComCryptoError(WeComCryptoError.PARSE_XML, "envelope is not acceptable XML") from None
    node = root.find("Encrypt")
    if node is None or not (node.text or "").strip():
        raise WeComCryptoError(WeComCryptoError.PARSE_XML, "envelope has no Encrypt element")
    return node.text.strip()
