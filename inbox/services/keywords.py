"""Twilio's opt-out keywords: the whole message, trimmed, in any casing ("STOP PLEASE" is not one)."""

from __future__ import annotations

from enum import StrEnum


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
# Twilio's OptOutType (Advanced Opt-Out) names the keyword class even when the body is unusual.
OPT_OUT_TYPES = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}


def classify(body: str, opt_out_type: str | None = None) -> Keyword | None:
    """Which keyword a text is, if any. Twilio's OptOutType wins over our own reading of the body."""
    if opt_out_type and opt_out_type.strip().upper() in OPT_OUT_TYPES:
        return OPT_OUT_TYPES[opt_out_type.strip().upper()]
    word = (body or "").strip().upper()
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def confirms_opt_in(body: str) -> bool:
    """A reply of Y or YES to an opt-in request ("reply Y or YES to confirm")."""
    return (body or "").strip().upper() in {"Y", "YES"}
