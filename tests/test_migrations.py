"""Migration 0005 widens the sender columns without touching a row, an index or a constraint.

On SQLite it changes nothing (SQLite never enforces a VARCHAR's length; Tortoise's table rebuild would
drop the indexes and cascade-delete every message). On PostgreSQL it widens the columns in place.
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from tests.support.migrations import migrate_to
from tests.support.postgres import scratch_database

# A module whose name starts with a digit is imported by name.
PAGE_INDEXES = importlib.import_module("inbox.migrations.0017_page_indexes").INDEXES
BEFORE = "models.0004_staff_sessions"
ROWS = [
    "INSERT INTO channel (label, account_sid, is_simulator, throughput, help_text, twilio_handles_opt_out,"
    " auto_reply_mode, auto_reply_text, office_hours, time_zone, call_response, created_at)"
    " VALUES ('x', 'AC1', FALSE, 1, 'h', TRUE, 'off', '', '{}', 'UTC', 'c', '2026-01-01')",
    "INSERT INTO conversation (channel_id, phone, last_message_preview, created_at)"
    " VALUES (1, '+14045387319', '', '2026-01-01')",
    "INSERT INTO message (conversation_id, direction, from_number, to_number, body, status, segments, encoding,"
    " created_at, updated_at) VALUES (1, 'inbound', '+14045387319', '+15005550006', 'hi', 'received', 1, 'GSM-7',"
    " '2026-01-01', '2026-01-01')",
]
INDEXES_OF = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({marks})"
WIDE = "whatsapp:" + "9" * 55  # 64 characters


async def test_on_sqlite_the_tables_keep_their_rows_indexes_and_constraints(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    await migrate_to(f"sqlite://{path}", BEFORE)
    with sqlite3.connect(path) as db:
        for statement in ROWS:
            db.execute(statement)
        tables_before = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        indexes_before = set(db.execute(INDEXES_OF.format(marks=", ".join("?" * len(tables_before))), tables_before))

    await migrate_to(f"sqlite://{path}")

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM message").fetchone() == (1,)
        # The old tables keep exactly their indexes (tables made later bring their own), plus the ones later
        # migrations add on purpose.
        marks = ", ".join("?" * len(tables_before))
        indexes_after = set(db.execute(INDEXES_OF.format(marks=marks), tables_before))
        # 0008: the indexes the hot queries need (a campaign's progress, the outbox's claims, a thread's page)
        added_on_purpose = {("idx_message_campaign_id",), ("idx_message_outbox_due",), ("idx_message_conversation",)}
        # 0017: every foreign key and the pages' hot look-ups (on the tables that were here before)
        added_on_purpose |= {(name,) for name, (table, _, _) in PAGE_INDEXES.items() if table in tables_before}
        # 0022: stored webhooks not yet processed, claimed in arrival order and by sender
        # (0025: the sender's look-up narrowed to the texts being processed)
        added_on_purpose |= {("idx_webhook_payload_unprocessed",), ("idx_webhook_payload_in_flight",)}
        # 0023: the queue's "failed today" and "with Twilio" states
        added_on_purpose |= {("idx_message_status_event_status_at",), ("idx_message_status_outbox",)}
        assert indexes_after == indexes_before | added_on_purpose
        with pytest.raises(sqlite3.IntegrityError):  # one conversation per number and channel, still
            db.execute(ROWS[1])
        db.execute(ROWS[1].replace("+14045387319", WIDE))
        assert db.execute("SELECT phone FROM conversation WHERE id = 2").fetchone() == (WIDE,)


async def test_on_postgresql_the_columns_are_widened_in_place() -> None:
    async def before_the_widening(url: str) -> None:
        await migrate_to(url, BEFORE)

    async with scratch_database("migration", prepare=before_the_widening) as url:
        db = await asyncpg.connect(url)
        try:
            for statement in ROWS:
                await db.execute(statement)
            await migrate_to(url)
            widths = await db.fetch(
                "SELECT table_name, column_name, character_maximum_length FROM information_schema.columns"
                " WHERE (table_name, column_name) IN"
                " (('conversation', 'phone'), ('consent_event', 'number'), ('client_phone', 'number'))"
            )
            assert {(r[0], r[1]): r[2] for r in widths} == {
                ("conversation", "phone"): 64,
                ("consent_event", "number"): 64,
                ("client_phone", "number"): 64,
            }
            assert await db.fetchval("SELECT count(*) FROM message") == 1
            with pytest.raises(asyncpg.UniqueViolationError):
                await db.execute(ROWS[1])
            await db.execute(ROWS[1].replace("+14045387319", WIDE))
        finally:
            await db.close()


# Migration 0012: alerts that piled up one per text fold into one per conversation and case.
PILED_UP = [
    *ROWS,  # channel 1, conversation 1, message 1 (inbound)
    *(
        "INSERT INTO message (conversation_id, direction, from_number, to_number, body, status, segments, encoding,"
        f" created_at, updated_at) VALUES (1, '{direction}', '+14045387319', '+15005550006', '{body}', 'received', 1,"
        " 'GSM-7', '2026-01-01', '2026-01-01')"
        for direction, body in (("inbound", "two"), ("inbound", "three"), ("outbound", "reminder"), ("inbound", "old"))
    ),  # messages 2, 3, 4 (ours), 5
    "INSERT INTO organisation (name, char_limit, alert_policy, delete_media_at_provider, dismiss_alerts_on_reply,"
    " linking_policy, opt_in_requests, opt_in_text, quiet_hours_end, quiet_hours_start, time_zone)"
    " VALUES ('Org', 160, 'all', FALSE, FALSE, 'default', TRUE, 't', 8, 21, 'UTC')",
    "INSERT INTO client (name, created_at) VALUES ('Maria', '2026-01-01')",
    "INSERT INTO \"case\" (number, title, opened_on, created_at, client_id) VALUES ('1', 't', '2026-01-01',"
    " '2026-01-01', 1)",
    *(
        f"INSERT INTO staff (email, name, role, is_active, created_at) VALUES ('{n}@x.org', '{n}', 'advocate', TRUE,"
        " '2026-01-01')"
        for n in ("ana", "ben")
    ),
    # Open: 1, 2, 3 on texts 1-3 (to Ana, Ana, Ben), 4 on our reminder; 5 dismissed.
    *(
        "INSERT INTO alert (created_at, case_id, message_id, dismissed_at)"
        f" VALUES ('2026-01-0{m}', 1, {m}, {dismissed})"
        for m, dismissed in ((1, "NULL"), (2, "NULL"), (3, "NULL"), (4, "NULL"), (5, "'2026-01-09'"))
    ),
    "INSERT INTO alert_assignee (alert_id, staff_id) VALUES (1, 1), (2, 1), (3, 2), (4, 1), (5, 1)",
]
FOLDED = "SELECT id, message_id, text_count, dismissed_at IS NULL FROM alert ORDER BY id"
ADDRESSED = "SELECT alert_id, staff_id FROM alert_assignee ORDER BY alert_id, staff_id"
FOLDED_ROWS = [(1, 3, 3, True), (4, 4, 1, True), (5, 5, 1, False)]
ADDRESSED_ROWS = [(1, 1), (1, 2), (4, 1), (5, 1)]


async def test_0012_folds_open_alerts_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "alerts.sqlite3"
    await migrate_to(f"sqlite://{path}", "models.0011_media_sizes")
    with sqlite3.connect(path) as db:
        for statement in PILED_UP:
            db.execute(statement)
    await migrate_to(f"sqlite://{path}")
    with sqlite3.connect(path) as db:
        assert [(i, m, c, bool(o)) for i, m, c, o in db.execute(FOLDED)] == FOLDED_ROWS
        assert list(db.execute(ADDRESSED)) == ADDRESSED_ROWS
        assert db.execute("SELECT dismiss_alerts_on_reply FROM organisation").fetchall() == [(1,)]


async def test_0012_folds_open_alerts_on_postgresql() -> None:
    async def before(url: str) -> None:
        await migrate_to(url, "models.0011_media_sizes")

    async with scratch_database("fold", prepare=before) as url:
        connection = await asyncpg.connect(url)
        try:
            for statement in PILED_UP:
                await connection.execute(statement)
            await connection.execute("SELECT setval('alert_id_seq', 5)")
        finally:
            await connection.close()
        await migrate_to(url)
        connection = await asyncpg.connect(url)
        try:
            assert [tuple(r) for r in await connection.fetch(FOLDED)] == FOLDED_ROWS
            assert [tuple(r) for r in await connection.fetch(ADDRESSED)] == ADDRESSED_ROWS
            assert await connection.fetchval("SELECT dismiss_alerts_on_reply FROM organisation") is True
        finally:
            await connection.close()


async def test_0015_leaves_room_on_campaign_recipient_pages_on_postgresql() -> None:
    """The start's pointer UPDATE stays on the page (HOT) only while the pages keep room: fillfactor 45."""
    async with scratch_database("fill", prepare=migrate_to) as url:
        connection = await asyncpg.connect(url)
        try:
            options = await connection.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'campaign_recipient'")
            assert options == ["fillfactor=45"]
        finally:
            await connection.close()
        await migrate_to(url, "models.0014_import_external_ids")
        connection = await asyncpg.connect(url)
        try:
            assert (
                await connection.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'campaign_recipient'")
                is None
            )
        finally:
            await connection.close()


async def test_0024_drops_the_recipient_pointer_index_and_gives_it_back(tmp_path: Path) -> None:
    """Unindexed, the start's pointer UPDATE is HOT on PostgreSQL (no indexed column changes); reversed, 0017's
    index is back. SQLite: the same portable SQL."""
    path = tmp_path / "pointer.sqlite3"
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'campaign_recipient'"
    await migrate_to(f"sqlite://{path}")
    with sqlite3.connect(path) as db:
        assert "idx_fk_campaign_recipient_message_id" not in {name for (name,) in db.execute(indexes)}
        assert "idx_fk_campaign_recipient_reply_id" in {name for (name,) in db.execute(indexes)}
    await migrate_to(f"sqlite://{path}", "models.0023_queue_indexes")
    with sqlite3.connect(path) as db:
        assert "idx_fk_campaign_recipient_message_id" in {name for (name,) in db.execute(indexes)}
