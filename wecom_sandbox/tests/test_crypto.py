"""The simulator's own WeCom crypto against Tencent's official vectors (docs/WECOM_PROTOCOL.md section 3)."""

import base64

import pytest

from wecom_sandbox.callbacks import CallbackSender
from wecom_sandbox.crypto import CallbackCrypto, CryptoError, aes_key_of

# Vector set A: Tencent's sample credentials.
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"

A1_SIGNATURE = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
A1_TIMESTAMP, A1_NONCE = "1476416373", "47744683"
A1_ECHOSTR = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
A1_PLAINTEXT = b"1288432023552776189"
A1_RANDOM = b"8908d0ff052afda0"

A2_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
A2_TIMESTAMP, A2_NONCE = "1476422779", "1597212914"
A2_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+k"
    "kYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4c"
    "h4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux0"
    "82f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
A2_BODY = (
    f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n<Encrypt><![CDATA[{A2_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
).encode()
A2_PLAINTEXT = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
).encode()
A2_RANDOM = b"694ce5a83ae07fe3"

# Vector D (derived from set A's credentials): a kf_msg_or_event callback.
D_PLAINTEXT = (
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><CreateTime>1348831860</CreateTime>"
    b"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
    b"<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>"
    b"<OpenKfId><![CDATA[wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q]]></OpenKfId></xml>"
)
D_ENCRYPT = (
    "scEag1243Fmy/fYz4Ux8D/4UzpZQW1WZC6+wy/7kEFJCro6MKobtEj/IRkwSOAIQRJ6tleBw9g8sb5YhD5ibp/C9/PXG6vQT0bcGQ3Xw3GVODt"
    "vHSgZ/bhVxWYduNflKNIvhqUuNWH2HJLnxG+RGe/qEA4R619TNfbFONFvQBUqlPg7Z+bDrNq7TzU7uRFs3YqGXv3KPTUDANsZ448BA0ueCom+v"
    "sKUdc+EyYtAz4Ut1r8GX5la+iyM7BInNQi32AehOAy37vkBoDO17yAM4ifg1lF3keEdVLLi5GmwhUc6iKaARhUv0NPJO1c2lSc/uNY382eqbCT"
    "39/HoPg+0oE9glfazgh6NTVth6tjKpF4TEimYU1E4zdJ1WmTfU9RkDnYkVqiIEJCWleHy1dl/oykVHzDeOFG4/YKswIQly11tWrsUwM/zSzeOx"
    "sd8uGS6V7OObtSgRHQvwgY0nyRGvVQCVp6MVYV8Xi2AdWIon3PexQcl4huD3FNDbu3KdBFXI"
)
D_SIGNATURE = "256751550313827d7ee9e56965eb09574b652da0"


@pytest.fixture
def crypto() -> CallbackCrypto:
    return CallbackCrypto(TOKEN, AES_KEY, CORP_ID)


def test_a3_encrypting_the_a2_plaintext_reproduces_a2_byte_for_byte(crypto):
    encrypted = crypto.encrypt(A2_PLAINTEXT, random_prefix=A2_RANDOM)

    assert encrypted == A2_ENCRYPT
    assert crypto.sign(A2_TIMESTAMP, A2_NONCE, encrypted) == A2_SIGNATURE


def test_a3_encrypting_the_a1_echostr_reproduces_it(crypto):
    echostr = crypto.encrypt(A1_PLAINTEXT, random_prefix=A1_RANDOM)

    assert echostr == A1_ECHOSTR
    assert crypto.sign(A1_TIMESTAMP, A1_NONCE, echostr) == A1_SIGNATURE


def test_vector_d_kf_event(crypto):
    encrypted = crypto.encrypt(D_PLAINTEXT, random_prefix=b"0123456789abcdef")

    assert encrypted == D_ENCRYPT and crypto.decrypt(encrypted) == D_PLAINTEXT
    assert crypto.sign("1700000000", "kfnonce01", encrypted) == D_SIGNATURE


def test_a2_pads_22_bytes_up_to_a_32_byte_block(crypto):
    # 16 random + 4 length + 228 message + 18 receiveid = 266 bytes: AES's 16-byte blocks would pad 6.
    ciphertext = base64.b64decode(A2_ENCRYPT)
    assert len(A2_PLAINTEXT) == 228 and len(ciphertext) == 266 + 22


def test_the_callback_sender_posts_exactly_the_a2_request(crypto):
    sender = CallbackSender(url="http://platform.invalid/cb", token=TOKEN, encoding_aes_key=AES_KEY,
                            receive_id=CORP_ID, agent_id=1000002)
    with sender:
        prepared = sender.prepare(A2_PLAINTEXT, timestamp=A2_TIMESTAMP, nonce=A2_NONCE, random_prefix=A2_RANDOM)

    assert prepared.body == A2_BODY
    assert prepared.url == (
        f"http://platform.invalid/cb?msg_signature={A2_SIGNATURE}&timestamp={A2_TIMESTAMP}&nonce={A2_NONCE}"
    )


def test_decrypts_the_official_vectors(crypto):
    assert crypto.decrypt(A2_ENCRYPT) == A2_PLAINTEXT
    assert crypto.decrypt(A1_ECHOSTR) == A1_PLAINTEXT


def test_a_random_prefix_makes_each_encryption_different_but_readable(crypto):
    first, second = crypto.encrypt(b"hello"), crypto.encrypt(b"hello")

    assert first != second
    assert crypto.decrypt(first) == crypto.decrypt(second) == b"hello"


def test_signature_check_accepts_upper_case_hex_and_refuses_a_wrong_one(crypto):
    crypto.check_signature(A2_SIGNATURE.upper(), A2_TIMESTAMP, A2_NONCE, A2_ENCRYPT)
    with pytest.raises(CryptoError, match="signature"):
        crypto.check_signature(A2_SIGNATURE, A2_TIMESTAMP, "other-nonce", A2_ENCRYPT)


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"x" * 20).decode(), "AES blocks"),
        (base64.b64encode(b"x" * 32).decode(), "padding"),
    ],
)
def test_unreadable_payloads_are_refused(crypto, encrypted, reason):
    with pytest.raises(CryptoError, match=reason):
        crypto.decrypt(encrypted)


def test_a_payload_for_another_receiver_is_refused(crypto):
    other_corp = CallbackCrypto(TOKEN, AES_KEY, "wwsomeoneelse")

    with pytest.raises(CryptoError, match="receiveid"):
        other_corp.decrypt(A2_ENCRYPT)


@pytest.mark.parametrize("key", ["short", AES_KEY + "A", AES_KEY[:-1] + "!"])
def test_a_malformed_encoding_aes_key_is_refused(key):
    with pytest.raises(ValueError, match="EncodingAESKey"):
        aes_key_of(key)
    assert len(aes_key_of(AES_KEY)) == 32


def test_a_wrong_length_random_prefix_is_refused(crypto):
    with pytest.raises(ValueError, match="16 bytes"):
        crypto.encrypt(b"x", random_prefix=b"short")
