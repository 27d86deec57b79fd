"""Searching the inbox: every message's text, client names, numbers (typed in any format) and case numbers.

The text is searched with the database's full-text index (migration 0010): FTS5 on SQLite, a GIN index on
`to_tsvector('simple', body)` on PostgreSQL; the dialect is chosen here and only here. What a person types
is never SQL: it is cut into words (letters and digits only) that become a prefix query, and every value
reaches the database as a parameter. Names, numbers and case numbers are substring matches (LIKE with
`%` and `_` escaped).

Only conversations the reader may see are searched, and names and case numbers only of clients they may see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tortoise import Tortoise

MAX_WORDS = 8  # a query is at most this many words: each one is a term the index must intersect
WORD = re.compile(r"[^\W_]+")  # letters and digits: nothing the FTS5 or tsquery syntax could read as an operator
PHONE_LIKE = re.compile(r"[\d\s()+.\-]*\d{3}[\d\s()+.\-]*")  # (404) 538-7319, +1 404 538 7319, 5387319
SNIPPET_BEFORE = 30
SNIPPET_AFTER = 90


@dataclass(frozen=True)
class Terms:
    """A search as typed, and what each kind of match uses from it."""

    text: str  # stripped, lower case: substring of a number, a name, a case number
    words: tuple[str, ...]  # prefix words for the full-text index
    digits: str  # the digits of something written like a phone number, else ""

    @property
    def name_parts(self) -> list[str]:
        """Every part must be in the name, in any order: "lopez maria" finds Maria Lopez."""
        return self.text.split()[:MAX_WORDS]


def terms_of(search: str) -> Terms | None:
    """None for an empty search (the whole list)."""
    text = " ".join(search.split()).lower()
    if not text:
        return None
    words = tuple(dict.fromkeys(WORD.findall(text)))[:MAX_WORDS]
    digits = re.sub(r"\D", "", text) if PHONE_LIKE.fullmatch(text) else ""
    return Terms(text=text, words=words, digits=digits)


@dataclass(frozen=True)
class Hit:
    """A conversation that matched; `message_id` is its newest message whose text matched (None: it matched
    by name, number or case number only)."""

    conversation_id: int
    message_id: int | None


@dataclass(frozen=True)
class Snippet:
    """The text around the first hit: the template escapes each part and marks `hit`."""

    before: str
    hit: str
    after: str


def _like(value: str) -> str:
    """A substring pattern for LIKE … ESCAPE '\\': what was typed, % and _ included, matches only itself."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class _Params:
    """Collects parameters and writes each dialect's placeholder (`?` or `$n`)."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.values: list[object] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.dialect == "postgres" else "?"

    def many(self, values: list[object]) -> str:
        return ", ".join(self.add(v) for v in values)


def _text_hits(terms: Terms, params: _Params) -> str:
    """The newest matching message of each conversation, as a CTE body, in this database's full-text syntax."""
    if params.dialect == "postgres":
        query = " & ".join(f"{word}:*" for word in terms.words)
        return (
            "SELECT conversation_id, MAX(id) AS message_id FROM message"
            f" WHERE to_tsvector('simple', body) @@ to_tsquery('simple', {params.add(query)})"
            " GROUP BY conversation_id"
        )
    query = " ".join(f'"{word}"*' for word in terms.words)
    return (
        "SELECT m.conversation_id, MAX(m.id) AS message_id FROM message_fts"
        " JOIN message m ON m.id = message_fts.rowid"
        f" WHERE message_fts MATCH {params.add(query)} GROUP BY m.conversation_id"
    )


def _who_matches(terms: Terms, params: _Params, client_ids: list[int] | None) -> list[str]:
    """Conditions on conversation `c`: its number, or a visible client's name or case number on that number."""
    lower = "LOWER(c.phone) LIKE {} ESCAPE '\\'"
    conditions = [lower.format(params.add(_like(terms.text)))]
    if len(terms.digits) >= 3:
        conditions.append(f"c.phone LIKE {params.add(_like(terms.digits))} ESCAPE '\\'")
    if client_ids is not None and not client_ids:
        return conditions

    def readable() -> str:  # written at each use: SQLite's `?` are bound in order
        return f" AND cp.client_id IN ({params.many(list(client_ids))})" if client_ids is not None else ""

    names = " AND ".join(f"LOWER(cl.name) LIKE {params.add(_like(part))} ESCAPE '\\'" for part in terms.name_parts)
    conditions.append(
        "c.phone IN (SELECT cp.number FROM client_phone cp JOIN client cl ON cl.id = cp.client_id"
        f" WHERE {names}{readable()})"
    )
    case_number = params.add(_like(terms.text))
    conditions.append(
        'c.phone IN (SELECT cp.number FROM client_phone cp JOIN "case" k ON k.client_id = cp.client_id'
        f" WHERE LOWER(k.number) LIKE {case_number} ESCAPE '\\'{readable()})"
    )
    return conditions


async def find(
    terms: Terms,
    *,
    phones: list[str] | None,
    client_ids: list[int] | None,
    unmatched_only: bool = False,
    limit: int = 100,
) -> list[Hit]:
    """Conversations matching, newest first, in one query.

    `phones`: the numbers the reader may see (None: every number); `client_ids`: the clients whose names and
    case numbers they may search (None: every client); `unmatched_only`: numbers on no client's record.
    """
    if phones is not None and not phones:
        return []
    connection = Tortoise.get_connection("default")
    params = _Params(connection.capabilities.dialect)
    cte = f"WITH hits AS ({_text_hits(terms, params)}) " if terms.words else ""
    where = ["c.last_message_at IS NOT NULL"]
    if phones is not None:
        where.append(f"c.phone IN ({params.many(list(phones))})")
    if unmatched_only:
        where.append("c.phone NOT IN (SELECT number FROM client_phone)")
    matches = _who_matches(terms, params, client_ids)
    if terms.words:
        matches.insert(0, "hits.message_id IS NOT NULL")
    where.append("(" + " OR ".join(matches) + ")")
    sql = (
        cte
        + f"SELECT c.id AS conversation_id, {'hits.message_id' if terms.words else 'NULL'} AS message_id"
        + " FROM conversation c"
        + (" LEFT JOIN hits ON hits.conversation_id = c.id" if terms.words else "")
        + " WHERE "
        + " AND ".join(where)
        + f" ORDER BY c.last_message_at DESC, c.id DESC LIMIT {params.add(limit)}"
    )
    rows = await connection.execute_query_dict(sql, params.values)
    return [Hit(row["conversation_id"], row["message_id"]) for row in rows]


def snippet(body: str, terms: Terms) -> Snippet:
    """The text around the first word that starts with a searched word (the whole text's start if the index
    matched in a way this cannot place, e.g. an accent typed without it)."""
    text = " ".join(body.split())
    first: re.Match[str] | None = None
    for word in terms.words:
        found = re.search(rf"(?<![^\W_]){re.escape(word)}[^\W_]*", text, flags=re.IGNORECASE)
        if found and (first is None or found.start() < first.start()):
            first = found
    if first is None:
        return Snippet("", "", _clip_after(text))
    return Snippet(_clip_before(text[: first.start()]), first.group(), _clip_after(text[first.end() :]))


def _clip_before(text: str) -> str:
    if len(text) <= SNIPPET_BEFORE:
        return text
    cut = text[-SNIPPET_BEFORE:]
    return "…" + (cut.split(" ", 1)[1] if " " in cut[:-1] else cut)


def _clip_after(text: str) -> str:
    if len(text) <= SNIPPET_AFTER:
        return text
    cut = text[:SNIPPET_AFTER]
    return (cut.rsplit(" ", 1)[0] if " " in cut[1:] else cut) + "…"
