"""Search in the inbox: every message's text through the database's full-text index (FTS5 on SQLite, a GIN
tsvector index on PostgreSQL), client names, numbers typed in any format and case numbers; a snippet of the
matching text; only what the reader may see; and a searched list that keeps its search when it refreshes."""

from __future__ import annotations

import importlib
import logging
import re
import sqlite3
from html import unescape
from pathlib import Path

import asyncpg
import httpx
import pytest

from inbox.models import Conversation, Message, Staff
from inbox.services import bulk, campaigns
from inbox.services import conversations as convo
from inbox.services.messaging import CAMPAIGN_TEXT_COLUMNS
from tests.support.campaigns import bulk_clients, numbered
from tests.support.migrations import migrate_to
from tests.support.pages import deferred_list_url, row_ids, words
from tests.support.postgres import scratch_database
from tests.support.records import MARIA
from tests.support.staff import StaffClient
from tests.support.webhooks import text_in

JOHN = "+14045387320"
ANA = "+14045387321"
STRANGER = "+14045387399"


def row_html(html: str, conversation_id: int) -> str:
    match = re.search(rf'<li id="conversation-{conversation_id}".*?</li>', html, re.DOTALL)
    assert match, f"conversation {conversation_id} is not in the list"
    return match.group(0)


async def found(staff: StaffClient, q: str, filter_name: str = "all") -> list[int]:
    page = await staff.get("/", params={"q": q, "filter": filter_name})
    assert page.status_code == 200, page.text
    return row_ids(page.text)


async def conversation_of(phone: str) -> Conversation:
    return await Conversation.get(phone=phone)


# ---------------------------------------------------------------- every message's text


async def test_a_word_of_an_older_message_finds_the_thread_with_its_snippet(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA, name="Maria Lopez")
    await make_case(phone=JOHN, name="John Smith")
    asked = {}
    for number in (MARIA, JOHN, STRANGER):
        asked[number] = await text_in(anonymous, number, "Hello again. Which courtroom? The letter says 4B.")
        await text_in(anonymous, number, "Also: can I bring my daughter?")  # the latest text says nothing of it
    await text_in(anonymous, ANA, "Where do I park?")
    staff = await signed_in(await make_staff("supervisor"))
    maria, john, stranger = [await conversation_of(p) for p in (MARIA, JOHN, STRANGER)]

    page = (await staff.get("/", params={"q": "courtroom"})).text
    assert row_ids(page) == [stranger.id, john.id, maria.id]  # newest first
    row = row_html(page, maria.id)
    assert "Hello again. Which <mark>courtroom</mark>? The letter says 4B." in row
    assert "daughter" not in row  # the snippet is the text that matched, not the latest
    assert f'href="/conversations/{maria.id}?filter=all&amp;q=courtroom#message-{asked[MARIA].id}"' in row
    # What is being typed: a word's beginning, any case; every word must be there, in any order.
    assert await found(staff, "COURTR") == [stranger.id, john.id, maria.id]
    assert await found(staff, "letter courtroom") == [stranger.id, john.id, maria.id]
    assert await found(staff, "courtroom park") == []
    assert "<mark>Which</mark> courtroom?" in row_html((await staff.get("/?q=which")).text, john.id)
    # A word inside another word is not a match (the index is of words), a word that is nowhere finds nothing.
    assert await found(staff, "ourtroom") == []


async def test_the_snippet_is_escaped_and_cut_around_the_hit(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA)
    body = (
        "I wrote this long message so that the part before the word is more than forty characters "
        "<i>&</i> hearing is on Monday at nine in the morning, in the annex building "
        "across the street from the main courthouse, room 12."
    )
    await text_in(anonymous, MARIA, body)
    staff = await signed_in(await make_staff("supervisor"))
    page = (await staff.get("/", params={"q": "hearing"})).text
    row = row_html(page, (await conversation_of(MARIA)).id)
    assert "<i>" not in row and "characters &lt;i&gt;&amp;&lt;/i&gt; <mark>hearing</mark>" in row
    snippet = unescape(re.search(r'<span class="preview snippet">(.*?)</span>', row, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) < 160


# ---------------------------------------------------------------- names, numbers, case numbers


async def test_client_names_numbers_in_any_format_and_case_numbers(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    maria_case = await make_case(phone=MARIA, name="Maria Lopez")
    await make_case(phone=JOHN, name="John Smith")
    await text_in(anonymous, MARIA, "Hi")
    await text_in(anonymous, JOHN, "Hello")
    maria, john = await conversation_of(MARIA), await conversation_of(JOHN)
    staff = await signed_in(await make_staff("supervisor"))

    assert await found(staff, "Lopez Maria") == [maria.id]
    assert await found(staff, "mar") == [maria.id]
    for typed in ("(404) 538-7319", "4045387319", "+1 404 538 7319", "404.538.7319", "538-7319"):
        assert await found(staff, typed) == [maria.id], typed
    assert await found(staff, "(404) 538-73") == [john.id, maria.id]
    assert await found(staff, maria_case.number) == [maria.id]
    assert await found(staff, maria_case.number.lower()[-6:]) == [maria.id]


async def test_an_advocate_finds_only_their_clients(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=MARIA, name="Maria Lopez", assignee=advocate)
    johns = await make_case(phone=JOHN, name="John Smith", assignee=await make_staff("advocate"))
    # A housemate on Maria's phone, not the advocate's client: her name and case stay hidden.
    housemate = await make_case(phone=MARIA, name="Hidden Housemate")
    for number in (MARIA, JOHN, STRANGER):
        await text_in(anonymous, number, "Which courtroom?")
    maria = await conversation_of(MARIA)
    staff = await signed_in(advocate)

    assert await found(staff, "courtroom") == [maria.id]
    for q in ("John", "Smith", "(404) 538-7320", "4045387399", johns.number, "Housemate", housemate.number):
        assert await found(staff, q) == [], q
    supervisor = await signed_in(await make_staff("supervisor"))
    assert len(await found(supervisor, "courtroom")) == 3
    assert await found(supervisor, "Housemate") == [maria.id]


@pytest.mark.parametrize(
    "q",
    [
        '"',
        "'",
        "\"courtroom' OR 1=1 --",
        "court*",
        "court:*",
        "a & b | !c",
        "NEAR(court room)",
        "courtroom AND",
        "-courtroom",
        "^court",
        "(court",
        "%",
        "_",
        "100%",
        "a_b",
        "\\",
        "🙂",
        "court 🙂 room",
        "x" * 2000,
        " ".join(["word"] * 50),
    ],
)
async def test_odd_input_never_errors(q: str, signed_in, make_staff, make_case, anonymous: httpx.AsyncClient) -> None:
    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Which courtroom? 🙂")
    staff = await signed_in(await make_staff("supervisor"))
    page = await staff.get("/", params={"q": q})
    assert page.status_code == 200
    fragment = await staff.get("/conversations", params={"q": q})
    assert fragment.status_code == 200
    if q in ("%", "_", "\\", "100%", "a_b"):  # LIKE's wildcards match only themselves
        assert row_ids(page.text) == []


# ---------------------------------------------------------------- the list keeps its search


async def test_the_searched_list_refreshes_with_its_search_and_takes_no_live_rows(
    signed_in, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    await make_case(phone=MARIA, name="Maria Lopez")
    await make_case(phone=JOHN, name="John Smith")
    await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, JOHN, "Thanks")
    maria = await conversation_of(MARIA)
    staff = await signed_in(await make_staff("supervisor"))

    page = (await staff.get("/", params={"q": "Maria López & co", "filter": "all"})).text
    match = re.search(r'<ul id="conversation-list" class="([^"]*)"\s+data-refresh-url="([^"]+)"', page)
    assert match, "the list has no refresh URL"
    assert match.group(1).split() == ["conversation-list", "filter-all", "searched"]
    refresh_url = unescape(match.group(2))
    assert refresh_url == "/conversations?filter=all&q=Maria+L%C3%B3pez+%26+co"
    assert 'name="q" value="Maria López &amp; co"' in page  # the box says what the list shows
    assert "/?filter=mine&amp;q=Maria+L%C3%B3pez+%26+co" in page  # a filter keeps the search

    page = (await staff.get("/", params={"q": "courtroom", "filter": "all"})).text
    refresh_url = unescape(re.search(r'data-refresh-url="(/conversations[^"]+)"', page).group(1))  # type: ignore[union-attr]
    refreshed = (await staff.get(refresh_url)).text
    assert row_ids(refreshed) == row_ids(page) == [maria.id]
    assert "searched" in refreshed and "<mark>courtroom</mark>" in refreshed
    # A thread opened from the results keeps the search in its list.
    thread_page = (await staff.get(f"/conversations/{maria.id}", params={"q": "courtroom", "filter": "all"})).text
    listed = (await staff.get(deferred_list_url(thread_page))).text
    assert row_ids(listed) == [maria.id] and "searched" in listed
    # Unsearched, the list takes live rows as before.
    plain = (await staff.get("/")).text
    assert 'class="conversation-list filter-all"' in plain and 'data-refresh-url="/conversations?filter=all"' in plain


async def test_live_rows_target_only_lists_that_are_not_searched(
    app, make_staff, make_case, anonymous: httpx.AsyncClient
) -> None:
    """A live row is not a search result: its out-of-band swaps select lists without the `searched` class (the
    browser check in the README's notes shows a searched list unchanged while texts arrive)."""
    from inbox.live import render_fragment

    await make_case(phone=MARIA)
    await text_in(anonymous, MARIA, "Hello")
    conversation = await conversation_of(MARIA)
    row = convo.ConversationRow(conversation, "Maria Lopez", 1, True, True)
    fragment = render_fragment("oob/conversation_row.html", row=row)
    targets = re.findall(r'hx-swap-oob="([^"]+)"', fragment)
    assert targets == [
        f"delete:#conversation-list:not(.searched) > #conversation-{conversation.id}",
        "afterbegin:#conversation-list.filter-all:not(.searched),#conversation-list.filter-mine:not(.searched),"
        "#conversation-list.filter-unread:not(.searched)",
    ]
    assert f'href="/conversations/{conversation.id}"' in fragment  # no search in a live row's link


# ---------------------------------------------------------------- cost


async def test_a_bulk_texts_words_find_its_threads(app, signed_in, make_staff) -> None:
    """A campaign's texts go into the index as every other text does, however they are inserted in bulk: 2,000 of
    them are more rows than one SQLite statement takes (`bulk.SQLITE_PARAMETERS`), so the first and the last are
    each in a different statement."""
    count = 2_000
    assert count * len(CAMPAIGN_TEXT_COLUMNS) > bulk.SQLITE_PARAMETERS
    await bulk_clients(count)
    supervisor = await make_staff("supervisor")
    body = "Hello {client_name}: the clinic moves to Elmwood Street."
    campaign = await campaigns.create_campaign(app.state.bus, supervisor, campaigns.CampaignInput("Move", body))
    await campaigns.start(app.state.bus, supervisor, campaign.id)
    staff = await signed_in(supervisor)
    for n in (0, count - 1):
        thread = await conversation_of(numbered(n))
        assert await found(staff, f"elmwood person {n}") == [thread.id]
        row = row_html((await staff.get("/", params={"q": f"elmwood person {n}"})).text, thread.id)
        assert "<mark>" in row
        assert f"Hello Client {n} Person: the clinic moves to Elmwood Street." in re.sub("</?mark>", "", row)


async def test_a_search_takes_the_same_queries_for_few_or_many_matches(
    make_staff, make_case, anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    advocate = await make_staff("advocate")
    supervisor = await make_staff("supervisor")

    async def cost(staff: Staff, q: str) -> tuple[int, int]:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
            rows = await convo.inbox_rows(staff, "all", q)
        assert all(r.hit is not None for r in rows)
        return len(rows), sum(1 for r in caplog.records if r.name == "tortoise.db_client")

    numbers = [f"+1404555{n:04d}" for n in range(12)]
    for n, number in enumerate(numbers[:2]):
        await make_case(phone=number, name=f"Client {n}", assignee=advocate)
        await text_in(anonymous, number, "Which courtroom?")
        await text_in(anonymous, number, "Thanks")
    few = {s.id: await cost(s, "courtroom") for s in (advocate, supervisor)}
    for n, number in enumerate(numbers[2:], start=2):
        await make_case(phone=number, name=f"Client {n}", assignee=advocate)
        await text_in(anonymous, number, "Which courtroom?")
        await text_in(anonymous, number, "Thanks")
    many = {s.id: await cost(s, "courtroom") for s in (advocate, supervisor)}
    for staff in (advocate, supervisor):
        assert few[staff.id][0] == 2 and many[staff.id][0] == 12
        assert few[staff.id][1] == many[staff.id][1], (few, many)
    # The search's own, plus two for the rows' latest texts and their writers (conversations.with_last_texts).
    assert many[supervisor.id][1] <= 10 and many[advocate.id][1] <= 14, many


# ---------------------------------------------------------------- the index follows the messages


async def test_the_index_follows_deletes_and_edits(signed_in, make_staff, make_case, anonymous) -> None:
    await make_case(phone=MARIA)
    message = await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, MARIA, "Thanks")
    staff = await signed_in(await make_staff("supervisor"))
    maria = await conversation_of(MARIA)
    assert await found(staff, "courtroom") == [maria.id]
    await Message.filter(id=message.id).update(body="Which floor?")
    assert await found(staff, "courtroom") == [] and await found(staff, "floor") == [maria.id]
    await Message.filter(id=message.id).delete()
    assert await found(staff, "floor") == []
    assert words(row_html((await staff.get("/")).text, maria.id)).endswith("Thanks")


# The migration just before the search index, whatever the chain is (the index is the newest).
BEFORE = "models." + importlib.import_module("inbox.migrations.0010_search").Migration.dependencies[0][1]
ROWS = [
    "INSERT INTO channel (label, account_sid, is_simulator, throughput, help_text, twilio_handles_opt_out,"
    " auto_reply_mode, auto_reply_text, office_hours, time_zone, call_response, created_at)"
    " VALUES ('x', 'AC1', FALSE, 1, 'h', TRUE, 'off', '', '{}', 'UTC', 'c', '2026-01-01')",
    "INSERT INTO conversation (channel_id, phone, last_message_preview, created_at)"
    " VALUES (1, '+14045387319', '', '2026-01-01')",
    "INSERT INTO message (conversation_id, direction, from_number, to_number, body, status, segments, encoding,"
    " created_at, updated_at) VALUES (1, 'inbound', '+14045387319', '+15005550006', 'Which courtroom, José?',"
    " 'received', 1, 'GSM-7', '2026-01-01', '2026-01-01')",
]


async def test_on_sqlite_the_migration_indexes_the_messages_already_there(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    await migrate_to(f"sqlite://{path}", BEFORE)
    with sqlite3.connect(path) as db:
        for statement in ROWS:
            db.execute(statement)
    await migrate_to(f"sqlite://{path}")
    with sqlite3.connect(path) as db:
        match = "SELECT rowid FROM message_fts WHERE message_fts MATCH ?"
        assert db.execute(match, ['"courtr"*']).fetchall() == [(1,)]
        assert db.execute(match, ['"jose"']).fetchall() == [(1,)]  # accents need not be typed
        db.execute(ROWS[2].replace("Which courtroom, José?", "A new text"))
        assert db.execute(match, ['"new"']).fetchall() == [(2,)]
    await migrate_to(f"sqlite://{path}", BEFORE)  # and back: the index and its triggers go
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'message_fts%'").fetchall() == []
        db.execute(ROWS[2])


async def test_on_postgresql_the_text_has_a_gin_index_the_search_uses() -> None:
    async def before_the_index(url: str) -> None:
        await migrate_to(url, BEFORE)

    async with scratch_database("search", prepare=before_the_index) as url:
        db = await asyncpg.connect(url)
        try:
            for statement in ROWS:
                await db.execute(statement)
            await migrate_to(url)
            definition = await db.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_message_body_fts'")
            assert "gin" in definition and "to_tsvector('simple'::regconfig, body)" in definition
            await db.execute("SET enable_seqscan = off")  # a table this small would be read whole otherwise
            plan = "\n".join(
                r[0]
                for r in await db.fetch(
                    "EXPLAIN SELECT id FROM message WHERE to_tsvector('simple', body) @@ to_tsquery('simple', $1)",
                    "courtr:*",
                )
            )
            assert "idx_message_body_fts" in plan
            assert (
                await db.fetchval(
                    "SELECT id FROM message WHERE to_tsvector('simple', body) @@ to_tsquery('simple', $1)", "courtr:*"
                )
                == 1
            )
        finally:
            await db.close()
