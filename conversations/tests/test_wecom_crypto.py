"""Tests for conversations.wecom.crypto and .messages, against the official vectors in docs/WECOM_PROTOCOL.md s.3."""

import base64
import random
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conversations.wecom.crypto import WeComCrypto, WeComCryptoError, validate_encoding_aes_key
from conversations.wecom.messages import MalformedMessage, parse_callback_message
from testing.vectors import (
    A1,
    A1_ECHO,
    A1_RANDOM_PREFIX,
    A2,
    A2_BODY,
    A2_ENCRYPT,
    A2_PLAINTEXT,
    A2_RANDOM_PREFIX,
    AES_KEY,
    CORP_ID,
    D_ENCRYPT,
    D_NONCE,
    D_PLAINTEXT,
    D_RANDOM_PREFIX,
    D_SIGNATURE,
    D_TIMESTAMP,
    TOKEN,
)


@pytest.fixture
def crypto():
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def raw_encrypt(plain_with_padding: bytes) -> str:
    """AES-CBC without any of WeCom's framing, to forge malformed plaintexts."""
    key = validate_encoding_aes_key(AES_KEY)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain_with_padding) + encryptor.finalize()).decode()


def framed(msg: bytes, receive_id: bytes = CORP_ID.encode(), *, length: int | None = None) -> bytes:
    return b"0123456789abcdef" + struct.pack(">I", len(msg) if length is None else length) + msg + receive_id


def assert_code(code, fn, *args):
    with pytest.raises(WeComCryptoError) as info:
        fn(*args)
    assert info.value.code == code
    return info.value


# -- official vectors ------------------------------------------------------------------------


def test_a1_verify_url_returns_echostr_plaintext(crypto):
    assert (
        crypto.verify_url(A1["msg_signature"], A1["timestamp"], A1["nonce"], A1["echostr"])
        == A1_ECHO
    )


def test_a2_decrypt_callback_handles_pad_byte_above_16(crypto):
    # A2's pad byte is 22: a 16-byte PKCS#7 unpadder would reject this real payload.
    plaintext = crypto.decrypt_callback(A2["msg_signature"], A2["timestamp"], A2["nonce"], A2_BODY)

    assert plaintext == A2_PLAINTEXT
    assert len(plaintext) == 228


def test_a3_deterministic_encryption_reproduces_a1_and_a2(crypto):
    assert crypto.encrypt(A1_ECHO.encode(), random_prefix=A1_RANDOM_PREFIX) == A1["echostr"]
    assert crypto.encrypt(A2_PLAINTEXT, random_prefix=A2_RANDOM_PREFIX) == A2_ENCRYPT


def envelope(encrypted: str) -> bytes:
    """What WeCom POSTs around the Encrypt text (its other elements are not signed)."""
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>\n</xml>").encode()


def test_a2_request_decrypts_to_its_plaintext(crypto):
    assert crypto.decrypt_callback(A2["msg_signature"], A2["timestamp"], A2["nonce"], A2_BODY) == A2_PLAINTEXT


def test_d_kf_event_vector(crypto):
    assert crypto.encrypt(D_PLAINTEXT, random_prefix=D_RANDOM_PREFIX) == D_ENCRYPT
    assert crypto.signature(D_TIMESTAMP, D_NONCE, D_ENCRYPT) == D_SIGNATURE
    assert crypto.decrypt_callback(D_SIGNATURE, D_TIMESTAMP, D_NONCE, envelope(D_ENCRYPT)) == D_PLAINTEXT


def test_round_trip_with_random_prefix(crypto):
    message = "长消息 ".encode() * 300
    encrypted = crypto.encrypt(message)

    assert crypto.decrypt_callback(crypto.signature("1", "n", encrypted), "1", "n", envelope(encrypted)) == message


def test_signature_is_sha1_of_the_sorted_values(crypto):
    assert crypto.signature(A2["timestamp"], A2["nonce"], A2_ENCRYPT) == A2["msg_signature"]
    assert crypto.signature(A2["nonce"], A2["timestamp"], A2_ENCRYPT) == A2["msg_signature"]  # order-free


# -- rejections ------------------------------------------------------------------------------


def test_wrong_signature_is_40001(crypto):
    error = assert_code(-40001, crypto.decrypt_callback, "0" * 40, A2["timestamp"], A2["nonce"], A2_BODY)

    assert TOKEN not in str(error) and AES_KEY not in str(error)


def test_wrong_signature_on_url_verification_is_40001(crypto):
    assert_code(-40001, crypto.verify_url, A1["msg_signature"], A1["timestamp"], "tampered", A1["echostr"])


def test_garbage_base64_is_40010(crypto):
    assert_code(-40010, crypto.decrypt, "not base64 at all!")
    assert_code(-40010, crypto.decrypt, "abc")  # bad padding
    assert_code(-40010, crypto.decrypt, "中文")


def test_wrong_aes_key_fails_to_decrypt():
    other = WeComCrypto(TOKEN, "a" * 43, CORP_ID)

    assert_code(-40007, other.decrypt, A2_ENCRYPT)


def test_wrong_corp_id_is_40005():
    other = WeComCrypto(TOKEN, AES_KEY, "ww0000000000000000")

    assert_code(-40005, other.decrypt_callback, A2["msg_signature"], A2["timestamp"], A2["nonce"], A2_BODY)


def test_truncated_ciphertext_is_40007(crypto):
    raw = base64.b64decode(A2_ENCRYPT)

    assert_code(
        -40007, crypto.decrypt, base64.b64encode(raw[:-16]).decode()
    )  # whole blocks, padding destroyed
    assert_code(-40007, crypto.decrypt, base64.b64encode(raw[:-5]).decode())  # not a block multiple
    assert_code(-40007, crypto.decrypt, "")


def message_with_pad(pad: int) -> tuple[bytes, bytes]:
    """A message and its framed, padded plaintext whose pad byte is exactly `pad`."""
    message = b"x" * ((-len(framed(b"")) - pad) % 32)
    content = framed(message)
    return message, content + bytes([pad]) * pad


@pytest.mark.parametrize("pad", [1, 16, 17, 22, 32])
def test_pad_bytes_up_to_32_are_accepted(crypto, pad):
    message, plaintext = message_with_pad(pad)

    assert crypto.decrypt(raw_encrypt(plaintext)) == message


@pytest.mark.parametrize(
    "tail",
    [bytes([0]) * 32, bytes([33]) * 32, b"z" * 27 + bytes([5, 4, 5, 5, 5])],
    ids=["pad-0", "pad-33", "inconsistent"],
)
def test_invalid_padding_is_40007(crypto, tail):
    _, plaintext = message_with_pad(32)
    content = plaintext[:-32]

    assert_code(-40007, crypto.decrypt, raw_encrypt(content + tail))


def test_message_length_beyond_plaintext_is_40007(crypto):
    content = framed(b"hi", length=10_000)
    pad = 32 - len(content) % 32

    assert_code(-40007, crypto.decrypt, raw_encrypt(content + bytes([pad]) * pad))


def test_xml_entity_bomb_envelope_is_40002(crypto):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
        b"<xml><Encrypt>&lol2;</Encrypt></xml>"
    )

    assert_code(-40002, crypto.decrypt_callback, "x", "1", "n", bomb)


@pytest.mark.parametrize(
    "body", [b"", b"not xml", b"<xml><ToUserName>x</ToUserName></xml>", b"<xml><Encrypt></Encrypt></xml>"]
)
def test_bad_envelope_is_40002(crypto, body):
    assert_code(-40002, crypto.decrypt_callback, "x", "1", "n", body)


def test_envelope_element_order_and_whitespace_do_not_matter(crypto):
    body = f"<xml>\n  <AgentID>1000002</AgentID>\n  <Encrypt>\n{A2_ENCRYPT}\n</Encrypt>\n</xml>".encode()

    assert crypto.decrypt_callback(A2["msg_signature"], A2["timestamp"], A2["nonce"], body) == A2_PLAINTEXT


def test_fuzzing_decrypt_only_ever_raises_wecom_crypto_error(crypto):
    rng = random.Random(20240501)
    valid = base64.b64decode(A2_ENCRYPT)
    for _ in range(3000):
        choice = rng.randrange(4)
        if choice == 0:
            raw = rng.randbytes(rng.choice([0, 1, 15, 16, 31, 32, 48, 64, 256]))
        elif choice == 1:
            raw = bytearray(valid)
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            raw = bytes(raw)
        else:
            raw = valid[: rng.randrange(len(valid))]
        candidates = [base64.b64encode(raw).decode(), raw, raw.decode("latin-1")]
        for candidate in candidates:
            try:
                crypto.decrypt(candidate)
            except WeComCryptoError:
                pass
        try:
            crypto.decrypt_callback("x", "1", "n", raw)
        except WeComCryptoError:
            pass


def test_non_string_inputs_raise_only_wecom_crypto_error(crypto):
    for value in (None, 42, object(), ["a"]):
        with pytest.raises(WeComCryptoError):
            crypto.decrypt(value)
        with pytest.raises(WeComCryptoError):
            crypto.decrypt_callback(value, value, value, value)


# -- keys --------------------------------------------------------------------------------------


def test_validate_encoding_aes_key_returns_32_bytes():
    assert len(validate_encoding_aes_key(AES_KEY)) == 32


@pytest.mark.parametrize(
    "key", ["", AES_KEY[:-1], AES_KEY + "a", AES_KEY[:-1] + "+", AES_KEY[:-1] + "=", None]
)
def test_validate_encoding_aes_key_rejects_bad_keys(key):
    with pytest.raises(ValueError, match="EncodingAESKey"):
        validate_encoding_aes_key(key)


def test_illegal_aes_key_in_constructor_is_40004():
    error = assert_code(-40004, WeComCrypto, TOKEN, "short", CORP_ID)

    assert "short" not in str(error)


def test_repr_hides_secrets(crypto):
    assert TOKEN not in repr(crypto) and AES_KEY not in repr(crypto)


# -- decrypted message parsing -----------------------------------------------------------------


def test_parse_a2_text_message():
    assert parse_callback_message(A2_PLAINTEXT) == {
        "ToUserName": CORP_ID,
        "FromUserName": "ChenJiaShun",
        "CreateTime": "1476422779",
        "MsgType": "text",
        "Content": "你好",
        "MsgId": "1456453720",
        "AgentID": "1000002",
    }


def test_parse_kf_event_with_cdata():
    fields = parse_callback_message(D_PLAINTEXT)

    assert fields["Event"] == "kf_msg_or_event"
    assert fields["Token"] == "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"
    assert fields["OpenKfId"] == "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"
    assert "MsgId" not in fields


def test_parse_keeps_64_bit_msgid_exact_and_empty_values():
    fields = parse_callback_message(
        b"<xml><MsgId>4561255354251345929</MsgId><EventKey><![CDATA[]]></EventKey>"
        b"<Content> a ]]&gt; b </Content></xml>"
    )

    assert fields == {"MsgId": "4561255354251345929", "EventKey": "", "Content": " a ]]> b "}


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"garbage",
        b"<notxml><a>1</a></notxml>",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><xml><Content>&e;</Content></xml>',
        b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><xml/>',
        b'<?xml version="1.0" encoding="no-such-codec"?><xml/>',
        None,
    ],
)
def test_parse_rejects_malformed_messages(plaintext):
    with pytest.raises(MalformedMessage) as info:
        parse_callback_message(plaintext)

    assert isinstance(info.value, ValueError)
    assert info.value.reason
