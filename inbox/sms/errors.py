"""Twilio error codes in plain words, for the advocate looking at a failed text.

The summary says what happened to the text; the action says what a person can do about it. Codes 21xxx
come back when Twilio refuses a text outright; 30xxx arrive later, in a delivery status callback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorExplanation:
    code: int
    summary: str
    action: str

    @property
    def more_info_url(self) -> str:
        return f"https://www.twilio.com/docs/errors/{self.code}"


_EXPLANATIONS: dict[int, tuple[str, str]] = {
    # Refused when we asked Twilio to send (nothing left our side).
    21211: (
        "This is not a valid phone number.",
        "Check the number with the client — a digit may be missing or mistyped — and correct it on their record.",
    ),
    21408: (
        "Texts to this country or region are not switched on for our account.",
        "Reach the client another way, and ask your administrator whether texting to this country should be enabled.",
    ),
    21610: (
        "This number has opted out: the client texted STOP, so no texts can be sent to it.",
        "The client must text START to this number to receive texts again. Until then, reach them another way.",
    ),
    21614: (
        "This number cannot receive texts — it is probably a landline.",
        "Ask the client for a mobile number, or call them instead.",
    ),
    21611: (
        "Too many texts are waiting to go out from our number, so this one was not accepted.",
        "Wait a while and send it again. If it keeps happening, tell your administrator.",
    ),
    21606: (
        "Our sending number is not allowed to send this text.",
        "Tell your administrator: the sending number set up for this office may be wrong or not able to text.",
    ),
    # Reported by the carrier after the text was accepted.
    30001: (
        "Too many texts were waiting to go out from our number, and this one timed out before it was sent.",
        "Send it again later. If it keeps happening, tell your administrator.",
    ),
    30003: (
        "Phone unreachable: the client's phone may be switched off, out of signal, or out of service.",
        "Try again later, or reach the client another way.",
    ),
    30004: (
        "The text was blocked: the client may have blocked our number, or their carrier blocked it.",
        "Reach the client another way and ask whether they are blocking texts from us.",
    ),
    30005: (
        "The phone number does not exist or is no longer in service.",
        "Check the number with the client and update their record.",
    ),
    30006: (
        "This is a landline, or the client's phone company cannot deliver texts to it.",
        "Ask the client for a mobile number, or call them instead.",
    ),
    30007: (
        "The phone company filtered this text as spam, so the client did not get it.",
        "Reword the text (avoid links and all-capital words) and try again. If it keeps happening, "
        "tell your administrator.",
    ),
    30008: (
        "The text could not be delivered for an unknown reason.",
        "Try again later. If it keeps failing, reach the client another way.",
    ),
    30032: (
        "Our toll-free sending number has not been verified yet, so phone companies refuse its texts.",
        "Tell your administrator: the toll-free number must be verified with Twilio.",
    ),
    30034: (
        "Our sending number is not registered for 10DLC, the registration US phone companies now "
        "require for business texting, so they refused the text.",
        "Tell your administrator: the number must be registered (brand and campaign) with Twilio.",
    ),
    # Not in the list we were asked for, but common enough to deserve plain words.
    20003: (
        "Twilio refused our account's credentials.",
        "Tell your administrator: the account SID or auth token for this sending number is wrong.",
    ),
    # Twilio busy or in trouble (HTTP 429, 500, 503): nothing wrong with the text, which the outbox retries.
    20429: (
        "Twilio was busy: too many texts were sent from our account at once.",
        "Nothing to do: the text is tried again by itself. If it keeps happening, tell your administrator.",
    ),
    20500: (
        "Twilio had a problem of its own and did not take the text.",
        "Nothing to do: the text is tried again by itself. If it failed in the end, retry it from the queue.",
    ),
    20503: (
        "Twilio was unavailable for a moment and did not take the text.",
        "Nothing to do: the text is tried again by itself. If it failed in the end, retry it from the queue.",
    ),
    21602: (
        "The text was empty.",
        "Write a message or attach a file, then send again.",
    ),
    21612: (
        "Texts cannot be sent from our number to this number.",
        "Reach the client another way, and tell your administrator.",
    ),
}


def explain(code: int | None) -> ErrorExplanation | None:
    """Plain words for a Twilio error code; None when there was no error."""
    if code is None:
        return None
    known = _EXPLANATIONS.get(code)
    if known is None:
        return ErrorExplanation(
            code=code,
            summary=f"The text could not be sent or delivered (Twilio error {code}).",
            action="Try again later or reach the client another way. If it keeps happening, tell your "
            f"administrator the error number: {code}.",
        )
    summary, action = known
    return ErrorExplanation(code=code, summary=summary, action=action)
