"""The official WeCom test credentials and vectors (docs/WECOM_PROTOCOL.md section 3), in one place.

Set A is Tencent's own sample (sbzhu/weworkapi_python, callback/Sample.py): its Token,
EncodingAESKey and CorpID are the credentials every test app uses, so the official requests A1
(URL verification) and A2 (an encrypted text message) can be replayed against our endpoint. A3 is
A1/A2 encrypted again with their known random prefixes. Vector D was derived from set A's
credentials (not a public source): a 微信客服 kf_msg_or_event callback.
"""

from __future__ import annotations

# -- set A: Tencent's sample credentials ---------------------------------------------------------------
CORP_ID = "ww1436e0e65a779aee"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"  # EncodingAESKey
AGENT_ID = 1000002  # the AgentID in A2's body

# -- A1: URL verification (GET) ------------------------------------------------------------------------
A1 = {
    "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "timestamp": "1476416373",
    "nonce": "47744683",
    "echostr": "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
}
A1_ECHO = "1288432023552776189"  # what the endpoint must answer: the decrypted echostr
A1_RANDOM_PREFIX = b"8908d0ff052afda0"  # A3: encrypting A1_ECHO with this prefix gives A1's echostr

# -- A2: an encrypted text message (POST) --------------------------------------------------------------
A2 = {
    "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
    "timestamp": "1476422779",
    "nonce": "1597212914",
}
A2_QUERY = "&".join(f"{name}={value}" for name, value in A2.items())
A2_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew"
    "+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24Yhm"
    "ZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwo"
    "cugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
# The body exactly as in the sample: newlines between the elements, every value in CDATA.
A2_BODY = (
    f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n<Encrypt><![CDATA[{A2_ENCRYPT}]]></Encrypt>\n"
    f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID>\n</xml>"
).encode()
# 228 bytes of UTF-8; its pad byte is 22, which a 16-byte PKCS#7 unpadder rejects.
A2_PLAINTEXT = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content>"
    "<MsgId>1456453720</MsgId><AgentID>1000002</AgentID></xml>"
).encode()
A2_RANDOM_PREFIX = b"694ce5a83ae07fe3"  # A3: encrypting A2_PLAINTEXT with this prefix gives A2_ENCRYPT

# -- D: a 微信客服 kf_msg_or_event callback (derived from set A) ------------------------------------------
OPEN_KFID = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"
D_TIMESTAMP = "1700000000"
D_NONCE = "kfnonce01"
D_RANDOM_PREFIX = b"0123456789abcdef"
D_PLAINTEXT = (
    b"<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName><CreateTime>1348831860</CreateTime>"
    b"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
    b"<Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>"
    b"<OpenKfId><![CDATA[wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q]]></OpenKfId></xml>"
)
D_ENCRYPT = (
    "scEag1243Fmy/fYz4Ux8D/4UzpZQW1WZC6+wy/7kEFJCro6MKobtEj/IRkwSOAIQRJ6tleBw9g8sb5YhD5ibp/C9/PXG6vQT0bcGQ3Xw3GVOD"
    "tvHSgZ/bhVxWYduNflKNIvhqUuNWH2HJLnxG+RGe/qEA4R619TNfbFONFvQBUqlPg7Z+bDrNq7TzU7uRFs3YqGXv3KPTUDANsZ448BA0ueCom"
    "+vsKUdc+EyYtAz4Ut1r8GX5la+iyM7BInNQi32AehOAy37vkBoDO17yAM4ifg1lF3keEdVLLi5GmwhUc6iKaARhUv0NPJO1c2lSc/uNY382eqb"
    "CT39/HoPg+0oE9glfazgh6NTVth6tjKpF4TEimYU1E4zdJ1WmTfU9RkDnYkVqiIEJCWleHy1dl/oykVHzDeOFG4/YKswIQly11tWrsUwM/zSze"
    "Oxsd8uGS6V7OObtSgRHQvwgY0nyRGvVQCVp6MVYV8Xi2AdWIon3PexQcl4huD3FNDbu3KdBFXI"
)
D_SIGNATURE = "256751550313827d7ee9e56965eb09574b652da0"
