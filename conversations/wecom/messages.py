"""Parsing of decrypted WeCom callback messages (app messages and events, kf_msg_or_event) to flat dicts."""

from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree as SafeElementTree

# What expat/defusedxml raise for hostile input: ParseError, DefusedXmlException (a
# ValueError), LookupError for an unknown declared encoding, TypeError for non-bytes.
_XML_ERRORS = (ParseError, ValueError, LookupError, TypeError)


class MalformedMessage(ValueError):
    """The decrypted plaintext is not a WeCom message; `reason` is safe to log."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_callback_message(plaintext: bytes) -> dict[str, str]:
    """Return {tag: text} for the children of <xml>, e.g. MsgType, Content, MsgId, Event, Token, OpenKfId.

    Values stay strings: MsgId is a 64-bit integer that a float would corrupt, and CreateTime's
    conversion is the caller's business. Nested elements (rare event payloads) map to their own
    text, which is usually empty. When a tag repeats, the first occurrence wins.
    """
    try:
        # forbid_dtd: a real message never has one; DTDs carry entity bombs and external references.
        root = SafeElementTree.fromstring(plaintext, forbid_dtd=True)
    except _XML_ERRORS:
        raise MalformedMessage("message is not acceptable XML") from None
    if root.tag != "xml":
        raise MalformedMessage("message root element is not <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):
            fields.setdefault(child.tag, child.text or "")
    return fields
