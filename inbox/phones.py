"""Phone numbers: everything stored is E.164, everything shown is formatted for people."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "US"


class InvalidPhoneNumber(ValueError):
    """A number a person typed that cannot be a real phone number."""


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


def for_people(e164: str, region: str = DEFAULT_REGION) -> str:
    """National format at home, international abroad; anything unparseable is shown as it is."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    home = phonenumbers.region_code_for_number(parsed) == region
    style = phonenumbers.PhoneNumberFormat.NATIONAL if home else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(parsed, style)
