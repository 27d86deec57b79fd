"""Pages at scale (issue 11): the Unread filter before the cut, the query count of each main page the same
however many conversations and alerts there are, the alerts dashboard in pages, and the indexes behind them."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from tortoise import Tortoise

from inbox import db
from inbox.models import Alert, Conversation, Staff
from inbox.services import alerts
from tests.support.pages import row_ids, words
from tests.support.records import MARIA, MakeCase
from tests.support.staff import MakeStaff, StaffClient
from tests.support.webhooks import text_in

NUMBERS = [f"+1404555{n:04d}" for n in range(200)]


async def queries_of(staff: StaffClient, path: str, caplog: pytest.LogCaptureFixture) -> int:
    """The statements one request for `path` took (Tortoise logs each at DEBUG)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        response = await staff.get(path)
    assert response.status_code == 200, response.text
    return sum(1 for record in caplog.records if record.name == "tortoise.db_client")


async def test_an_old_unread_conversation_shows_under_unread_past_the_newest_100(
    signed_in, make_staff: MakeStaff, anonymous: httpx.AsyncClient
) -> None:
    supervisor = await signed_in(await make_staff("supervisor"))
    oldest = await text_in(anonymous, NUMBERS[0], "Still waiting for an answer")
    for number in NUMBERS[1:102]:
        await text_in(anonymous, number, "Thanks")
    newer = await Conversation.filter(phone__in=NUMBERS[1:102]).values_list("id", flat=True)
    for conversation_id in newer:  # read: 101 newer conversations, none of them unread
        assert (await supervisor.post(f"/conversations/{conversation_id}/read")).status_code == 303

    everything = row_ids((await supervisor.get("/")).text)
    assert len(everything) == 100 and oldest.conversation_id not in everything  # the cut: newest 100
    unread = await supervisor.get("/?filter=unread")
    assert row_ids(unread.text) == [oldest.conversation_id]
    assert "Still waiting for an answer" in words(unread.text)


async def test_the_unmatched_filter_is_cut_after_filtering_too(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient
) -> None:
    supervisor = await signed_in(await make_staff("supervisor"))
    stranger = await text_in(anonymous, NUMBERS[0], "Who is this?")
    for n, number in enumerate(NUMBERS[1:102]):
        await make_case(phone=number, name=f"Client {n}")
        await text_in(anonymous, number, "Thanks")
    page = await supervisor.get("/?filter=unmatched")
    assert row_ids(page.text) == [stranger.conversation_id]


async def conversations_with_alerts(
    anonymous: httpx.AsyncClient, make_case: MakeCase, advocate: Staff, numbers: list[str]
) -> None:
    for n, number in enumerate(numbers):
        await make_case(phone=number, assignee=advocate, name=f"Client {n}")
        await text_in(anonymous, number, f"Text from client {n}")


async def test_each_main_page_takes_as_many_queries_with_many_conversations_and_alerts(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient, caplog
) -> None:
    advocate = await make_staff("advocate")
    supervisor_staff = await make_staff("supervisor")
    await make_case(phone=MARIA, assignee=advocate)
    first = await text_in(anonymous, MARIA, "Which courtroom?")
    await conversations_with_alerts(anonymous, make_case, advocate, NUMBERS[:2])
    ana, sam = await signed_in(advocate), await signed_in(supervisor_staff)
    case_id = (await Alert.get(message_id=first.id)).case_id
    pages = [
        (ana, "/"),
        (ana, "/?filter=unread"),
        (ana, f"/conversations/{first.conversation_id}"),
        (ana, "/alerts"),
        (ana, f"/cases/{case_id}"),
        (ana, "/queue"),
        (ana, f"/conversations/{first.conversation_id}/thread"),
        (sam, "/"),
        (sam, f"/conversations/{first.conversation_id}"),
        (sam, "/alerts"),
        (sam, "/alerts/dashboard"),
    ]
    few = [await queries_of(staff, path, caplog) for staff, path in pages]
    await conversations_with_alerts(anonymous, make_case, advocate, NUMBERS[2:12])
    for n in range(5):
        await text_in(anonymous, MARIA, f"And another thing {n}")
    many = [await queries_of(staff, path, caplog) for staff, path in pages]
    assert few == many
    assert all(count > 0 for count in few)


async def test_the_thread_asks_who_may_see_what_once(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient, caplog
) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=MARIA, assignee=advocate)
    message = await text_in(anonymous, MARIA, "Which courtroom?")
    ana = await signed_in(advocate)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="tortoise.db_client"):
        assert (await ana.get(f"/conversations/{message.conversation_id}")).status_code == 200
    statements = [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"]
    # The reader's current assignments: read once for the list, the thread, consent and the cases shown.
    assignments = [s for s in statements if re.search(r'FROM "assignment"', s)]
    assert len(assignments) == 1, assignments


def statements_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tortoise.db_client"]


async def test_a_page_reads_the_organisation_once_and_its_thread_in_few_queries(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient, caplog
) -> None:
    advocate = await make_staff("advocate")
    await make_case(phone=MARIA, assignee=advocate)
    message = await text_in(anonymous, MARIA, "Which courtroom?")
    await text_in(anonymous, MARIA, "And which floor?")
    ana = await signed_in(advocate)
    counts = {}
    for path in ("/queue", f"/conversations/{message.conversation_id}"):
        counts[path] = await queries_of(ana, path, caplog)
        # The queue asked for it 14 times (every state's "today" and quiet hours), the thread twice.
        assert len([s for s in statements_of(caplog) if 'FROM "organisation"' in s]) == 1, path
    # The queue: a short queue's states are counted from their lists, not asked again (33 before).
    assert counts["/queue"] == 12, counts
    # The thread: its texts' writers and cases joined, their links with their cases in one query, the inbox
    # list fetched after the page (31 before).
    assert counts[f"/conversations/{message.conversation_id}"] == 18, counts


async def test_the_dashboard_shows_a_page_of_each_office_and_the_rest_on_demand(
    signed_in, make_staff: MakeStaff, make_case: MakeCase, anonymous: httpx.AsyncClient, monkeypatch
) -> None:
    monkeypatch.setattr(alerts, "DASHBOARD_PAGE", 3)
    advocate = await make_staff("advocate")
    await conversations_with_alerts(anonymous, make_case, advocate, NUMBERS[:7])
    order = list(await Alert.all().order_by("created_at", "id").values_list("id", flat=True))
    sam = await signed_in(await make_staff("supervisor"))

    page = await sam.get("/alerts")
    section = page.text.split('id="alert-office-none"', 1)[1].split("</section>", 1)[0]
    assert row_ids(section, "alert") == order[:3]
    assert "(7 open)" in words(section)  # the office's count is all of them, not the page's
    more = re.search(r'hx-get="([^"]+)"[^>]*>More alerts in No office', section)
    assert more and "/alerts/dashboard/more?office=none&amp;after=" in more.group(1)

    second = await sam.get(more.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert row_ids(second.text, "alert") == order[3:6]
    link = re.search(r'href="([^"]+)"[^>]*>More alerts', second.text)
    assert link  # without JavaScript: the office's next page as a page
    third = await sam.get(link.group(1).replace("&amp;", "&"))
    assert row_ids(third.text, "alert") == order[6:]
    assert "More alerts" not in third.text

    bad = await sam.get("/alerts/dashboard/more?office=none")
    assert bad.status_code == 422


# Foreign keys left without an index on purpose, and why (each one a migration says more about).
UNINDEXED_ON_PURPOSE = {
    # 0024: the campaign start UPDATEs it for every recipient; unindexed, that UPDATE stays HOT on PostgreSQL.
    # Every reader filters by campaign_id first, and the app deletes no message (ON DELETE SET NULL's look-up).
    ("campaign_recipient", "message_id"),
}


async def test_every_foreign_key_has_an_index(app) -> None:
    """Tortoise makes none; 0017 made them. A foreign key added later needs its own (this test names it)."""
    connection = Tortoise.get_connection("default")
    if connection.capabilities.dialect == "postgres":
        rows = await connection.execute_query_dict(
            "SELECT c.conrelid::regclass::text AS tab, a.attname AS col FROM pg_constraint c"
            " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
            " WHERE c.contype = 'f' AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid"
            " AND i.indkey[0] = c.conkey[1])"
        )
        missing = sorted((str(r["tab"]).strip('"'), str(r["col"])) for r in rows)
    else:
        tables = await connection.execute_query_dict(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        missing = []
        for table in (str(t["name"]) for t in tables):
            keys = await connection.execute_query_dict(
                f"SELECT \"from\" AS col FROM pragma_foreign_key_list('{table}')"
            )
            leading = set()
            for index in await connection.execute_query_dict(f"SELECT name FROM pragma_index_list('{table}')"):
                info = await connection.execute_query_dict(
                    f"SELECT name FROM pragma_index_info('{index['name']}') WHERE seqno = 0"
                )
                leading |= {str(i["name"]) for i in info}
            missing += [(table, str(k["col"])) for k in keys if k["col"] not in leading]
    assert sorted(missing) == sorted(UNINDEXED_ON_PURPOSE)


async def test_postgresql_connections_go_back_to_the_pool_without_a_reset_round_trip(app) -> None:
    """asyncpg's default reset (a second round trip after every statement Tortoise runs) is replaced by none.
    The configuration is checked on any suite; the live pool where the suite runs on PostgreSQL."""
    config = db.connection_of("postgres://inbox@127.0.0.1:5432/inbox")
    assert isinstance(config, dict) and config["credentials"]["reset"] is db._keep_session  # type: ignore[index]
    assert db.connection_of("sqlite:///tmp/x.sqlite3") == "sqlite:///tmp/x.sqlite3"  # SQLite has no pool reset
    connection = Tortoise.get_connection("default")
    if connection.capabilities.dialect == "postgres":
        async with connection.acquire_connection() as raw:  # type: ignore[attr-defined]
            assert await raw.fetchval("SELECT 1") == 1
        assert connection._pool._reset is db._keep_session  # type: ignore[attr-defined]
