"""A contact's notes and custom attributes, as the tenant's people and integrators keep them (the API).

Custom attributes are a flat JSON object: string keys of up to 64 characters, scalar values (a string of up
to 1,000 characters, a number, true or false), at most 50 keys and 16 KB in all. An update merges (RFC 7396,
JSON merge patch, one level): a key given with a value is set, a key given as null is removed, the others
stay, so two systems that keep different keys do not overwrite each other.
"""

from __future__ import annotations

import json
import math

from django.db import transaction
from django.utils.translation import gettext as _

from conversations.models import Contact

MAX_NOTES_LENGTH = 10_000
MAX_ATTRIBUTE_KEY_LENGTH = 64
MAX_ATTRIBUTE_VALUE_LENGTH = 1_000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_BYTES = 16_384
# Integers beyond this lose precision in JavaScript (and many JSON readers): refused rather than altered.
MAX_SAFE_INTEGER = 2**53 - 1


class ContactInvalid(ValueError):
    """The update is refused; `errors` by field, as the API reports them."""

    def __init__(self, errors: dict):
        super().__init__(str(errors))
        self.errors = errors


def _unstorable(text: str) -> bool:
    """PostgreSQL's jsonb refuses NUL (\\u0000), and UTF-8 has no lone surrogates: both would be a server error."""
    return "\x00" in text or any("\ud800" <= character <= "\udfff" for character in text)


def attribute_value_problem(value) -> str | None:
    """Why `value` cannot be a custom attribute's value (None: it can; null is "remove" in a patch)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_SAFE_INTEGER else _("Integers are limited to ±2^53-1.")
    if isinstance(value, float):
        return None if math.isfinite(value) else _("Numbers must be finite.")
    if isinstance(value, str):
        if _unstorable(value):
            return _("Null characters and unpaired surrogates are not allowed.")
        if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return _("At most %(n)d characters.") % {"n": MAX_ATTRIBUTE_VALUE_LENGTH}
        return None
    return _("A value must be a string, a number, true or false (null removes the attribute).")


def attribute_patch_problems(patch) -> dict:
    """{key: [problem]} of a patch of custom attributes, or {"non_field_errors": [...]} when it is not an
    object; empty when the patch may be applied."""
    if not isinstance(patch, dict):
        return {"non_field_errors": [_("Custom attributes are a JSON object of attribute names and values.")]}
    problems = {}
    for key, value in patch.items():
        if not key.strip() or len(key) > MAX_ATTRIBUTE_KEY_LENGTH:
            problems[key] = [_("An attribute name has 1 to %(n)d characters.") % {"n": MAX_ATTRIBUTE_KEY_LENGTH}]
        elif _unstorable(key):
            problems[key] = [_("Null characters and unpaired surrogates are not allowed.")]
        elif (problem := attribute_value_problem(value)) is not None:
            problems[key] = [problem]
    return problems


def merged_attributes(current: dict, patch: dict) -> dict:
    merged = dict(current)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def update_contact(*, contact_id: int, notes: str | None = None, attributes: dict | None = None) -> Contact:
    """Set the notes and/or merge a patch into the custom attributes of a contact (locked, so concurrent
    patches of different keys all land)."""
    if notes is not None and len(notes) > MAX_NOTES_LENGTH:
        raise ContactInvalid({"notes": [_("At most %(n)d characters.") % {"n": MAX_NOTES_LENGTH}]})
    if attributes is not None and (problems := attribute_patch_problems(attributes)):
        raise ContactInvalid({"attributes": problems})
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact_id)
        fields = []
        if notes is not None:
            contact.notes = notes
            fields.append("notes")
        if attributes is not None:
            merged = merged_attributes(contact.attributes or {}, attributes)
            if len(merged) > MAX_ATTRIBUTES:
                raise ContactInvalid({"attributes": [_("At most %(n)d custom attributes per contact.")
                                                     % {"n": MAX_ATTRIBUTES}]})
            if len(json.dumps(merged, ensure_ascii=False).encode()) > MAX_ATTRIBUTES_BYTES:
                raise ContactInvalid({"attributes": [_("At most %(n)d bytes of custom attributes per contact.")
                                                     % {"n": MAX_ATTRIBUTES_BYTES}]})
            contact.attributes = merged
            fields.append("attributes")
        if fields:
            contact.save(update_fields=fields)
    return contact
