"""Phone numbers: everything stored is E.164, everything shown is formatted for people.

Webhooks may also name senders that are not phone numbers — `whatsapp:+14155550100`,
`messenger:1234567890`, a named sender such as `CourtAlert`, a short code — and those are kept and
shown exactly as they came: read as a phone number, `messenger:4045387319` would become a client's
number and land on their case.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "US"
# A phone number as digits are written: "+1 (404) 538-7319". Anything with a letter or a colon is an address.
PHONE_WRITING = re.compile(r"\+?[\d\s().\-]+")
# Parsing a number costs ~0.1 ms, and the same few thousand numbers come by again and again (every inbound text
# reads its sender several times, every page shows its clients' numbers): the answers are remembered.
KNOWN_NUMBERS = 16384


class InvalidPhoneNumber(ValueError):
    """A number a person typed that cannot be a real phone number."""


@lru_cache(maxsize=KNOWN_NUMBERS)
def normalise(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 for any way a person may write a number: '(404) 538-7319', '+1 404 538 7319', …"""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("Enter a phone number.")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber(f"“{text}” is not a phone number.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"“{text}” is not a valid phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=KNOWN_NUMBERS)
def sender_address(raw: str) -> str:
    """A webhook's From or To as we keep it: E.164 for a phone number, else exactly as it came."""
    if PHONE_WRITING.fullmatch(raw or ""):
        try:
            return normalise(raw)
        except InvalidPhoneNumber:
            pass  # a short code, or digits that are no valid number
    return raw


def is_phone_number(value: str) -> bool:
    """A real phone number (which our numbers can text), not a short code, WhatsApp address or named sender."""
    if not PHONE_WRITING.fullmatch(value or ""):
        return False
    try:
        normalise(value)
    except InvalidPhoneNumber:
        return False
    return True


@lru_cache(maxsize=KNOWN_NUMBERS)
def for_people(e164: str, region: str = DEFAULT_REGION) -> str:
    """National format at home, international abroad; anything else (an address, a named sender) as it is."""
    if not PHONE_WRITING.fullmatch(e164 or ""):
        return e164
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    home = phonenumbers.region_code_for_number(parsed) == region
    style = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)
