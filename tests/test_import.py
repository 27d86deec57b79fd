"""CSV import: the sample files in docs/import loaded into the real database twice (the second time changes
nothing), a bad row that changes nothing and names its line and column, okay-to-text that cannot undo a STOP
(texted through the real signed webhook), dry runs, the `inbox import` command run for real, and the admin
upload page."""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from starlette.applications import Starlette

from inbox import clock
from inbox.models import (
    Assignment,
    AuditEntry,
    Case,
    CaseEvent,
    CaseNote,
    Client,
    ClientPhone,
    ConsentEvent,
    ConsentSource,
    ConversationRead,
    EventKind,
    EventReminder,
    Message,
    MessageLink,
    MessageStatusEvent,
    Office,
    QuickEntry,
)
from inbox.services import audit, case_events, import_jobs, quiet_hours
from inbox.services.import_files import CsvFile
from inbox.services.importing import ImportFailed, ImportReport, run_import
from inbox.services.reminder_times import ReminderSpec
from tests.support.cli import DATABASE_FILE, run_inbox
from tests.support.importing import SAMPLE_NAMES, SAMPLES, job_id_of, sample_staff, samples, uploads
from tests.support.records import MARIA
from tests.support.webhooks import text_in

CLIENTS_HEADER = "external_id,name,mobile,okay_to_text,preferred_language\n"
CASES_HEADER = "external_id,number,title,client_external_id,legal_problem,office,opened_on,closed_on\n"


def csv_file(name: str, text: str, bom: bool = False) -> CsvFile:
    return CsvFile(name, (b"\xef\xbb\xbf" if bom else b"") + text.encode())


def counts(report: ImportReport) -> dict[str, tuple[int, int, int]]:
    return {kind.value: (t.created, t.updated, t.unchanged) for kind, t in report.tallies.items()}


async def row_counts() -> dict[str, int]:
    models = (Client, ClientPhone, ConsentEvent, Case, Office, Assignment, CaseEvent, EventReminder, Message)
    return {model.__name__: await model.all().count() for model in models}


async def test_the_sample_files_import_and_a_second_run_changes_nothing(app: Starlette) -> None:
    admin = await sample_staff()
    first = await run_import(app.state.bus, samples(), staff=admin)
    assert counts(first) == {
        "clients": (3, 0, 0),
        "cases": (3, 0, 0),
        "assignments": (4, 0, 0),
        "events": (2, 0, 0),
    }
    maria = await Client.get(external_id="CL-1001").prefetch_related("phones")
    assert (maria.name, maria.preferred_language) == ("Maria Lopez", "es")
    assert [(p.number, p.okay_to_text, p.opted_out) for p in maria.phones] == [(MARIA, True, False)]  # E.164
    assert await ClientPhone.filter(client__external_id="CL-1003").count() == 0  # no mobile in the row
    (entry,) = await ConsentEvent.filter(number=MARIA)
    assert (entry.source, entry.okay_to_text, entry.staff_id) == (ConsentSource.IMPORT, True, admin.id)
    closed = await Case.get(external_id="CA-2003").prefetch_related("office", "client")
    assert (closed.number, closed.office.name, closed.client.external_id) == ("2026-FAM-0103", "Decatur", "CL-1003")
    assert (str(closed.opened_on), str(closed.closed_on)) == ("2026-08-20", "2026-11-30")
    primary = await Assignment.get(case__external_id="CA-2001", primary=True).prefetch_related("staff")
    assert primary.staff.email == "alice@example.org"
    hearing = await CaseEvent.get(external_id="EV-3001")
    assert hearing.starts_at == datetime(2027, 3, 4, 14, 30, tzinfo=UTC)
    # The organisation's default reminders, as when the hearing is added by hand: scheduled texts to Maria.
    reminders = await EventReminder.filter(event_id=hearing.id).prefetch_related("message")
    assert len(reminders) == 2 and all(r.message is not None and r.message.send_at for r in reminders)
    appointment = await CaseEvent.get(external_id="EV-3002")  # no offset: the organisation's time (New York)
    assert appointment.starts_at == datetime(2027, 2, 10, 19, 0, tzinfo=UTC)

    before = await row_counts()
    second = await run_import(app.state.bus, samples(), staff=admin)
    assert second.changes == 0
    assert counts(second) == {
        "clients": (0, 0, 3),
        "cases": (0, 0, 3),
        "assignments": (0, 0, 4),
        "events": (0, 0, 2),
    }
    assert await row_counts() == before


async def test_changed_rows_are_updated_and_okay_to_text_goes_through_the_ledger(app: Starlette) -> None:
    admin = await sample_staff()
    await run_import(app.state.bus, samples(), staff=admin)
    clients = (
        (SAMPLES / "clients.csv")
        .read_text()
        .replace("Maria Lopez,(404) 538-7319,true", "María López,(404) 538-7319,false")
    )
    cases = (
        (SAMPLES / "cases.csv")
        .read_text()
        .replace("Rahman custody,CL-1003,Family,Decatur", "Rahman custody,CL-1003,Family,Atlanta")
    )
    events = (SAMPLES / "events.csv").read_text().replace("2027-03-04T09:30:00-05:00", "2027-03-05T09:30:00-05:00")
    clients = clients.replace("James Carter,+1 404 555 0134,false", "James Carter,(404) 555-0177,true")
    people = (
        (SAMPLES / "assignments.csv")
        .read_text()
        .replace("CA-2001,alice@example.org,true,2026-10-01,", "CA-2001,alice@example.org,false,,2026-12-31")
    )
    files = [
        csv_file("clients.csv", clients),
        csv_file("cases.csv", cases),
        csv_file("assignments.csv", people),
        csv_file("events.csv", events),
    ]
    report = await run_import(app.state.bus, files, staff=admin)
    assert counts(report) == {
        "clients": (0, 2, 1),
        "cases": (0, 1, 2),
        "assignments": (0, 1, 3),
        "events": (0, 1, 1),
    }
    changed = await Assignment.get(case__external_id="CA-2001", staff__email="alice@example.org")
    assert (changed.primary, str(changed.start), str(changed.end)) == (False, "2026-10-01", "2026-12-31")
    # A new mobile starts its own ledger entry; the old number's consent does not carry over.
    (james,) = await ClientPhone.filter(client__external_id="CL-1002")
    assert (james.number, james.okay_to_text, james.opted_out) == ("+14045550177", True, False)
    opened = await ConsentEvent.filter(client_phone_id=james.id).order_by("-id").first()
    assert opened is not None and (opened.number, opened.source) == ("+14045550177", ConsentSource.IMPORT)
    assert opened.detail == "mobile number changed by an import by Ada Admin"
    assert (await Client.get(external_id="CL-1001")).name == "María López"
    assert await ClientPhone.filter(number=MARIA).values_list("okay_to_text", "opted_out") == [(False, False)]
    last = await ConsentEvent.filter(number=MARIA).order_by("-id").first()
    assert last is not None and (last.source, last.okay_to_text) == (ConsentSource.IMPORT, False)
    assert (await Case.get(external_id="CA-2003").prefetch_related("office")).office.name == "Atlanta"
    hearing = await CaseEvent.get(external_id="EV-3001")
    assert hearing.starts_at == datetime(2027, 3, 5, 14, 30, tzinfo=UTC)
    # Its pending reminders moved with it (7 days and 1 day before, at 9:00 in Maria's zone).
    sends = sorted(m.send_at for m in await Message.filter(reminders__event_id=hearing.id) if m.send_at)
    assert [s.date().isoformat() for s in sends] == ["2027-02-26", "2027-03-04"]


async def test_one_bad_row_changes_nothing_and_names_its_line_and_column(app: Starlette) -> None:
    admin = await sample_staff()
    await run_import(app.state.bus, samples()[:1], staff=admin)
    before = await row_counts()
    clients = CLIENTS_HEADER + "CL-1,Ana Diaz,+14045550111,true,es\nCL-1001,Maria Renamed,(404) 538-7319,false,es\n"
    cases = (
        CASES_HEADER
        + "CA-1,2026-X-1,Ana's case,CL-1,Housing,Atlanta,2026-10-01,\nCA-2,2026-X-2,Two,CL-1,,,21/10/2026,\n"
    )
    with pytest.raises(ImportFailed) as failed:
        await run_import(
            app.state.bus, [csv_file("nightly-clients.csv", clients), csv_file("cases.csv", cases)], staff=admin
        )
    assert [str(p) for p in failed.value.problems] == [
        "cases.csv line 3, column opened_on: “21/10/2026” is not a date: write it as YYYY-MM-DD (2026-11-21)."
    ]
    assert await row_counts() == before
    assert (await Client.get(external_id="CL-1001")).name == "Maria Lopez"


async def test_every_problem_is_named_and_references_are_checked(app: Starlette) -> None:
    clients = CLIENTS_HEADER + "C1,,555,yes,\nC2,Ana,,,\nC2,Ana again,,,\n"
    cases = CASES_HEADER + "K1,N1,Title,NOBODY,,,,\nK2,N2,,C2,,,,2026-13-01\n"
    assignments = "staff_email,case_external_id,primary,start,end\nwho@example.org,K1,true,2026-02-01,2026-01-01\n"
    with pytest.raises(ImportFailed) as failed:
        await run_import(
            app.state.bus,
            [csv_file("c.csv", clients), csv_file("k.csv", cases), csv_file("a.csv", assignments)],
        )
    problems = [str(p) for p in failed.value.problems]
    assert problems == [
        "a.csv line 2, column staff_email: no staff account has the email who@example.org.",
        "a.csv line 2, column end: the end date is before the start date.",
        "c.csv line 2, column name: name is empty; every row needs one.",
        "c.csv line 2, column mobile: “555” is not a phone number (write it as +14045387319 or (404) 538-7319).",
        "c.csv line 2, column okay_to_text: “yes” is not true or false.",
        "c.csv line 4: client C2 appears again (first on line 3).",
        "k.csv line 2, column client_external_id: no client has the external id NOBODY.",
        "k.csv line 3, column title: title is empty; every row needs one.",
        "k.csv line 3, column closed_on: “2026-13-01” is not a date: write it as YYYY-MM-DD (2026-11-21).",
    ]
    assert await Client.all().count() == 0


async def test_a_case_number_taken_by_another_case_is_refused(app: Starlette, make_case) -> None:
    by_hand = await make_case()
    await run_import(app.state.bus, [csv_file("clients.csv", CLIENTS_HEADER + "C1,Ana Diaz,,,\n")])
    cases = CASES_HEADER + f"K1,{by_hand.number},Ana's case,C1,,,,\nK2,N-2,Two,C1,,,,\nK3,N-2,Three,C1,,,,\n"
    with pytest.raises(ImportFailed) as failed:
        await run_import(app.state.bus, [csv_file("cases.csv", cases)])
    assert [str(p) for p in failed.value.problems] == [
        f"cases.csv line 2, column number: case number {by_hand.number} already belongs to a case added by hand "
        "or through the API.",
        "cases.csv line 4, column number: case number N-2 is also on cases.csv line 3.",
    ]


async def test_an_unknown_header_or_a_non_utf8_file_is_refused(app: Starlette) -> None:
    with pytest.raises(ImportFailed) as failed:
        await run_import(app.state.bus, [csv_file("x.csv", "id,full_name\n1,Ana\n"), CsvFile("y.csv", b"\xff\xfe")])
    first, second = (str(p) for p in failed.value.problems)
    assert first.startswith("x.csv line 1: the header row “id,full_name” is not one of an import's files.")
    assert "clients: external_id,name,mobile,okay_to_text,preferred_language" in first
    assert second.startswith("y.csv line 1: this is not UTF-8 text.")


async def test_a_bom_extra_columns_and_any_order_are_fine(app: Starlette) -> None:
    text = "Notes,preferred_language,mobile,NAME,okay_to_text,external_id\nignored,en,404-555-0111,Ana Diaz,TRUE,C9\n"
    report = await run_import(app.state.bus, [csv_file("excel.csv", text, bom=True)])
    assert counts(report) == {"clients": (1, 0, 0)}
    phone = await ClientPhone.get(client__external_id="C9")
    assert (phone.number, phone.okay_to_text) == ("+14045550111", True)


async def test_okay_to_text_never_undoes_an_opt_out(app: Starlette, anonymous: httpx.AsyncClient) -> None:
    await run_import(app.state.bus, [csv_file("clients.csv", CLIENTS_HEADER + f"C1,Maria Lopez,{MARIA},true,\n")])
    await text_in(anonymous, MARIA, body="STOP")
    stranger = "+14045550199"
    await text_in(anonymous, stranger, body="STOP")  # a number on no record yet
    ledger_before = await ConsentEvent.all().count()
    rows = f"C1,Maria Lopez,{MARIA},true,\nC2,New Client,{stranger},true,\n"
    report = await run_import(app.state.bus, [csv_file("nightly.csv", CLIENTS_HEADER + rows)])
    assert counts(report) == {"clients": (1, 0, 1)}
    assert report.notices == [
        f"nightly.csv line 2: {MARIA} has opted out (texted STOP): okay_to_text true left opted out; "
        "only the client can opt in again by texting START.",
        f"nightly.csv line 3: {stranger} has opted out (texted STOP): okay_to_text true left opted out; "
        "only the client can opt in again by texting START.",
    ]
    phones = await ClientPhone.all().order_by("id").values_list("number", "opted_out")
    assert phones == [(MARIA, True), (stranger, True)]
    assert not any(p.may_text for p in await ClientPhone.all())
    # One new ledger entry: the new client's number, opened opted out. Nothing for Maria's row.
    (opened,) = await ConsentEvent.filter(number=stranger, source=ConsentSource.IMPORT)
    assert (opened.okay_to_text, opened.opted_out) == (False, True)
    assert await ConsentEvent.all().count() == ledger_before + 1
    latest = await ConsentEvent.filter(number=MARIA).order_by("-id").first()
    assert latest is not None and latest.source == ConsentSource.KEYWORD


async def test_an_import_is_audited_once_with_its_counts_and_a_dry_run_or_a_refused_file_is_not(
    app: Starlette,
) -> None:
    admin = await sample_staff()
    await run_import(app.state.bus, samples(), dry_run=True, staff=admin)
    bad = csv_file("clients.csv", CLIENTS_HEADER + "CL-9,Ana Diaz,555,true,es\n")
    with pytest.raises(ImportFailed):
        await run_import(app.state.bus, [bad], staff=admin)
    assert not await AuditEntry.filter(action=audit.Action.IMPORTED).exists()

    await run_import(app.state.bus, samples(), staff=admin)
    (entry,) = await AuditEntry.filter(action=audit.Action.IMPORTED)
    assert entry.actor_id == admin.id
    assert entry.detail == {
        "files": [f.name for f in samples()],
        "clients_created": 3,
        "clients_updated": 0,
        "cases_created": 3,
        "cases_updated": 0,
        "assignments_created": 4,
        "assignments_updated": 0,
        "events_created": 2,
        "events_updated": 0,
    }


async def test_a_dry_run_counts_and_writes_nothing(app: Starlette) -> None:
    admin = await sample_staff()
    before = await row_counts()
    report = await run_import(app.state.bus, samples(), dry_run=True, staff=admin)
    assert report.dry_run
    assert counts(report) == {
        "clients": (3, 0, 0),
        "cases": (3, 0, 0),
        "assignments": (4, 0, 0),
        "events": (2, 0, 0),
    }
    assert await row_counts() == before
    await run_import(app.state.bus, samples(), staff=admin)
    again = await run_import(app.state.bus, samples(), dry_run=True, staff=admin)
    assert again.changes == 0


async def test_progress_is_reported_up_to_every_row(app: Starlette) -> None:
    admin = await sample_staff()
    seen: list[tuple[int, int]] = []
    await run_import(app.state.bus, samples(), staff=admin, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24) and all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


# ---------------------------------------------------------------- the command


def rows_of(database: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return list(connection.execute(sql))


def test_the_command_prints_counts_and_exits_1_with_nothing_changed_on_a_bad_row(workdir: Path) -> None:
    for email, role in (("alice@example.org", "advocate"), ("ada@example.org", "admin")):
        made = run_inbox(
            workdir, "create-user", "--email", email, "--name", role, "--role", role, "--password", "x" * 12
        )
        assert made.returncode == 0, made.stderr
    files = [str(SAMPLES / name) for name in SAMPLE_NAMES]
    dry = run_inbox(workdir, "import", "--dry-run", *files)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[:4] == [
        "clients: created 3, updated 0, unchanged 0",
        "cases: created 3, updated 0, unchanged 0",
        "assignments: created 4, updated 0, unchanged 0",
        "events: created 2, updated 0, unchanged 0",
    ]
    database = workdir / DATABASE_FILE
    assert rows_of(database, "SELECT count(*) FROM client") == [(0,)]
    first = run_inbox(workdir, "import", *files)
    assert first.returncode == 0, first.stderr
    assert "clients: created 3, updated 0, unchanged 0" in first.stdout.splitlines()
    second = run_inbox(workdir, "import", *files)
    assert second.stdout.splitlines() == [
        "clients: created 0, updated 0, unchanged 3",
        "cases: created 0, updated 0, unchanged 3",
        "assignments: created 0, updated 0, unchanged 4",
        "events: created 0, updated 0, unchanged 2",
    ]
    bad = workdir / "bad.csv"
    bad.write_text(CLIENTS_HEADER + "CL-1001,Renamed,(404) 538-7319,true,es\nCL-9,Bob,555,true,\n")
    failed = run_inbox(workdir, "import", str(bad))
    assert failed.returncode == 1
    assert f"{bad} line 3, column mobile: “555” is not a phone number" in failed.stderr
    assert "Nothing was imported" in failed.stderr
    assert rows_of(database, "SELECT name FROM client WHERE external_id = 'CL-1001'") == [("Maria Lopez",)]


# ---------------------------------------------------------------- the upload page


async def test_the_upload_page_is_for_admins_with_a_form_token(app: Starlette, make_staff, signed_in) -> None:
    advocate = await signed_in(await make_staff("advocate"))
    assert (await advocate.get("/admin/import")).status_code == 403
    refused = await advocate.post("/admin/import", files=uploads(*samples()))
    assert refused.status_code == 403
    admin = await signed_in(await make_staff("admin"))
    settings_page = await admin.get("/admin/settings")
    assert 'href="/admin/import"' in settings_page.text  # linked from the admin pages
    page = await admin.get("/admin/import")
    assert page.status_code == 200 and 'type="file" name="files"' in page.text
    forged = await admin.post("/admin/import", {"csrf_token": "not-the-token"}, files=uploads(*samples()))
    assert forged.status_code == 403 and "did not come from Case Inbox" in forged.text
    assert await Client.all().count() == 0


async def test_an_upload_runs_in_the_background_and_shows_its_report(app: Starlette, make_staff, signed_in) -> None:
    await sample_staff()
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/import")
    started = await admin.post(
        "/admin/import", {"mode": "dry_run"}, files=uploads(*samples()), headers={"HX-Request": "true"}
    )
    assert started.status_code == 202 and "<progress" in started.text
    job_id = job_id_of(started.text)
    await import_jobs.wait(job_id)
    panel = await admin.get(f"/admin/import/{job_id}/progress")
    assert "hx-get" not in panel.text  # finished: no more polling
    assert "Dry run: nothing was written" in panel.text and "clients: created 3, updated 0, unchanged 0" in panel.text
    assert await Client.all().count() == 0

    # Without JavaScript: the plain form leads to the job's own page.
    plain = await admin.post("/admin/import", {"mode": "import"}, files=uploads(*samples()))
    assert plain.status_code == 303
    await import_jobs.wait(plain.headers["location"].rsplit("/", 1)[1])
    page = await admin.get(plain.headers["location"])
    assert "Imported." in page.text and "events: created 2, updated 0, unchanged 0" in page.text
    assert 'value="import" checked' in page.text  # the form keeps the choice
    assert await Client.all().count() == 3
    # Another admin cannot watch it.
    other = await signed_in(await make_staff("admin"))
    assert (await other.get(plain.headers["location"])).status_code == 404


async def test_upload_problems_are_shown_escaped_and_nothing_changes(app: Starlette, make_staff, signed_in) -> None:
    admin = await signed_in(await make_staff("admin"))
    await admin.get("/admin/import")
    bad = csv_file("<i>clients</i>.csv", CLIENTS_HEADER + "C1,Ana,<b>555</b>,true,\n")
    started = await admin.post("/admin/import", {"mode": "import"}, files=uploads(bad), headers={"HX-Request": "true"})
    job_id = job_id_of(started.text)
    await import_jobs.wait(job_id)
    panel = (await admin.get(f"/admin/import/{job_id}/progress")).text
    assert "Nothing was imported: 1 problem(s)" in panel
    assert (
        "&lt;i&gt;clients&lt;/i&gt;.csv line 2, column mobile: “&lt;b&gt;555&lt;/b&gt;” is not a phone number" in panel
    )
    assert "<b>555" not in panel and await Client.all().count() == 0
    empty = await admin.post("/admin/import", {"mode": "import"}, headers={"HX-Request": "true"})
    assert empty.status_code == 422 and "Choose one or more CSV files" in empty.text


# ---------------------------------------------------------------- events in bulk: as if added by hand


async def test_an_imported_event_schedules_the_same_reminders_as_one_added_by_hand(app: Starlette) -> None:
    """Bulk-written reminders (inbox.services.event_import) against case_events.add_event's, field by field: one
    held for quiet hours, one asking for a C in the client's language, one whose time has passed, and one for a
    client with no number."""
    admin = await sample_staff()
    await run_import(app.state.bus, samples()[:3], staff=admin)
    await QuickEntry.create(
        name="Event reminder", language="es", body="{client_first_name}: {event_title} {event_time}"
    )
    await QuickEntry.create(name="Confirmation request", language="es", body="Responda C, {client_first_name}.")
    soon = clock.now() + timedelta(days=3)  # its 7-day reminder has passed
    await case_events.save_default_reminders(
        admin,
        {
            EventKind.HEARING: [ReminderSpec(7 * 24 * 60, "09:00"), ReminderSpec(24 * 60, "07:30")],  # before 8 a.m.
            EventKind.APPOINTMENT: [ReminderSpec(120, None, None, True)],
            EventKind.MEETING: [],
            EventKind.DEADLINE: [],
        },
    )
    by_hand: list[int] = []
    lines = []
    for n, (case_ext, kind) in enumerate([("CA-2001", "hearing"), ("CA-2001", "appointment"), ("CA-2003", "hearing")]):
        case = await Case.get(external_id=case_ext)
        data = case_events.EventInput(kind=kind, title=f"Thing {n}", starts_at=soon, place="Room 4")
        by_hand.append((await case_events.create_event(app.state.bus, admin, case.id, data)).id)
        lines.append(f"EV-{n},{case_ext},{kind},Thing {n},{soon.isoformat()},Room 4")
    events = csv_file(
        "events.csv", "external_id,case_external_id,kind,title,starts_at,place\n" + "\n".join(lines) + "\n"
    )
    report = await run_import(app.state.bus, [events], staff=admin)
    assert counts(report) == {"events": (3, 0, 0)}

    async def shape(event_id: int) -> list[tuple[object, ...]]:
        shown = []
        for r in await EventReminder.filter(event_id=event_id).order_by("id").prefetch_related("message"):
            m = r.message
            text = None
            if m is not None:
                links = await MessageLink.filter(message_id=m.id).values_list("case_id", "reason", "linked_by_id")
                notes = await CaseNote.filter(message_id=m.id).values_list("case_id", "author", "body")
                steps = await MessageStatusEvent.filter(message_id=m.id).values_list("status", flat=True)
                text = (
                    m.body, m.send_at, m.next_attempt_at, m.status, m.outbox_state, m.error_message, m.conversation_id,
                    m.from_number, m.to_number, m.case_id, m.sent_by_id, m.purpose, m.segments, m.encoding,
                    links, notes, steps,
                )  # fmt: skip
            shown.append((r.minutes_before, r.at_local_time, r.ask_confirmation, r.skipped, text))
        return shown

    imported = [(await CaseEvent.get(external_id=f"EV-{n}")).id for n in range(3)]
    for hand, bulk_id in zip(by_hand, imported, strict=True):
        assert await shape(bulk_id) == await shape(hand)
    hearing, appointment, no_number = [await shape(event_id) for event_id in imported]
    assert hearing[0][3] == case_events.PASSED and hearing[1][4] is not None
    assert str(hearing[1][4][5]).startswith("Held for quiet hours until 8:00 a.m.")
    starts = quiet_hours.clock_words(soon.astimezone(ZoneInfo("America/New_York")))
    assert appointment[0][4][0] == f"Maria: Thing 1 {starts} Responda C, Maria."
    assert [row[3] for row in no_number] == [case_events.NO_NUMBER, case_events.NO_NUMBER]
    # The importer has read the thread up to the last reminder scheduled in it, as when added by hand.
    latest = await Message.filter(to_number=MARIA).order_by("-id").first()
    assert latest is not None
    read = await ConversationRead.get(staff_id=admin.id, conversation_id=latest.conversation_id)
    assert read.last_read_message_id == latest.id
