"""Input that can never be valid, recognised in one place: ids beyond the database's integer range, and text
the database cannot store. Without these checks PostgreSQL refuses the query and the caller gets a 500.

- Ids: every primary key is a Tortoise `IntField`, a 32-bit `integer` on PostgreSQL (SQLite's are 64-bit).
  Page routes' `{name:int}` path parameters use `IdConvertor` (registered as "int" by `inbox.routes`), so a
  larger id matches no route and answers the 404 page; ids read from page queries and forms go through
  `record_id`. The API validates its ids with pydantic against the same `MAX_ID` (422 naming the field).
- Text: PostgreSQL refuses NUL (U+0000) in text, and no database can encode an unpaired surrogate
  (U+D800–U+DFFF, which JSON's `\\ud800` escapes can produce). `unstorable` names the problem; the query
  string guard (inbox.routes.errors), `web.checked_form` and the API's body parser refuse such input with a 422.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from starlette.convertors import Convertor

MAX_ID = 2**31 - 1  # PostgreSQL `integer`, the type of every primary key (Tortoise IntField)

_SURROGATES = re.compile("[\ud800-\udfff]")


def digits_up_to(limit: int) -> str:
    """A regular expression matching exactly the whole numbers from 0 to `limit` (leading zeros allowed)."""
    text = str(limit)
    branches = [f"[0-9]{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for index, digit in enumerate(text):
        if digit != "0":
            rest = len(text) - index - 1
            branches.append(text[:index] + f"[0-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    branches.append(text)
    return "0*(?:" + "|".join(branches) + ")"


class IdConvertor(Convertor[int]):
    """Starlette's `int` path convertor, bounded: an id the database cannot hold matches no route (404)."""

    regex = digits_up_to(MAX_ID)

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        value = int(value)
        assert 0 <= value <= MAX_ID, "Ids are whole numbers the database can hold"
        return str(value)


def record_id(value: object) -> int | None:
    """An id typed into a page's query or form: a whole number the database can hold, else None."""
    text = str(value).strip() if value is not None else ""
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if number <= MAX_ID else None


def unstorable(text: str) -> str | None:
    """Why the database cannot store this text, in words a person can act on; None when it can."""
    if "\x00" in text:
        return "Remove the NUL character (U+0000): text containing it cannot be stored."
    if _SURROGATES.search(text):
        return "Remove the unpaired surrogate (U+D800–U+DFFF): it is not a character and cannot be stored."
    return None


def printable(text: str) -> str:
    """The text with what cannot be stored (or encoded in an answer) replaced by U+FFFD."""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", "\ufffd"))


def find_unstorable(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, reason) for every string, key or value, in decoded JSON that cannot be stored."""
    if isinstance(value, str):
        reason = unstorable(value)
        if reason:
            yield path, reason
    elif isinstance(value, dict):
        for key, item in value.items():
            reason = unstorable(str(key))
            name = printable(str(key)) if reason else str(key)
            where = f"{path}.{name}" if path else name
            if reason:
                yield where, reason
            else:
                yield from find_unstorable(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from find_unstorable(item, f"{path}.{index}" if path else str(index))
