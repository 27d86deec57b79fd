"""The client phone (/dev/phone): only in development mode with the simulator, and only for the
numbers the signed-in user may see — an advocate's own clients; supervisors and admins any number."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from starlette.applications import Starlette

from inbox.app import create_app
from inbox.models import Direction, Media, MediaStatus, Message, MessageStatus, Staff
from inbox.services.directory import PhoneInput, create_assignment, create_case, create_client
from inbox.services.staff import create_staff
from inbox.settings import Settings
from tests.support.apps import running, simulator_settings
from tests.support.staff import PASSWORD, StaffClient, sign_in

MINE = "+14045387319"  # Maria Lopez, on the advocate's case
THEIRS = "+14045387320"  # John Smith, on a case the advocate is not assigned to
UNKNOWN = "+14045387399"  # on no client record
PHONE_PATHS = ("/dev/phone", "/dev/phone/{number}", "/dev/phone/media/{token}")


def phone_routes(app: Starlette) -> set[str]:
    return {path for route in app.routes if (path := getattr(route, "path", "")) in PHONE_PATHS}


@pytest.mark.parametrize(
    ("environment", "simulator", "present"),
    [("development", True, True), ("production", True, False), ("development", False, False)],
)
def test_the_client_phone_exists_only_in_development_with_the_simulator(
    settings: Settings, environment: str, simulator: bool, present: bool
) -> None:
    chosen = settings.with_changes(environment=environment)
    if simulator:
        chosen = simulator_settings(settings, environment=environment)
    assert phone_routes(create_app(chosen)) == (set(PHONE_PATHS) if present else set())


async def test_in_production_the_simulator_has_no_client_phone(settings: Settings) -> None:
    async with running(simulator_settings(settings, environment="production")) as app:
        staff: StaffClient | None = None
        try:
            admin, _ = await create_staff(email="ada@example.org", name="Ada", role="admin", password=PASSWORD)
            staff = await sign_in(app, admin)
            assert "/dev/phone" not in (await staff.get("/")).text
            for response in (
                await staff.get("/dev/phone"),
                await staff.get(f"/dev/phone/{UNKNOWN}"),
                await staff.post(f"/dev/phone/{UNKNOWN}", {"body": "hi"}),
            ):
                assert response.status_code == 404
            assert await Message.all().count() == 0
        finally:
            if staff is not None:
                await staff.http.aclose()


@pytest.fixture
async def dev_office(settings: Settings) -> AsyncIterator[Callable[[str], Awaitable[StaffClient]]]:
    """The development app with two clients (one on the advocate's case) and a way to sign in by role."""
    async with running(simulator_settings(settings, environment="development")) as app:
        clients: list[StaffClient] = []
        try:
            people: dict[str, Staff] = {}
            for role in ("advocate", "supervisor", "admin"):
                people[role], _ = await create_staff(
                    email=f"{role}@example.org", name=role.title(), role=role, password=PASSWORD
                )
            for number, name, case_number in ((MINE, "Maria Lopez", "16E-1"), (THEIRS, "John Smith", "16E-2")):
                client = await create_client(name=name, phones=[PhoneInput(number, "mobile", True)])
                case = await create_case(number=case_number, title="Eviction", client_id=client.id)
                if number == MINE:
                    await create_assignment(case_id=case.id, staff_email=people["advocate"].email, primary=True)

            async def open_for(role: str) -> StaffClient:
                clients.append(await sign_in(app, people[role]))
                return clients[-1]

            yield open_for
        finally:
            for staff in clients:
                await staff.http.aclose()


async def test_an_advocate_plays_only_their_own_clients_numbers(dev_office) -> None:
    advocate = await dev_office("advocate")
    index = await advocate.get("/dev/phone")
    assert index.status_code == 200
    assert f'href="/dev/phone/{MINE}"' in index.text and "Maria Lopez" in index.text
    assert THEIRS not in index.text and "John Smith" not in index.text
    assert "Or any number (an unknown sender)" not in index.text

    assert (await advocate.get(f"/dev/phone/{MINE}")).status_code == 200
    assert (await advocate.post(f"/dev/phone/{MINE}", {"body": "Which courtroom?"})).status_code == 303
    assert await Message.filter(from_number=MINE).count() == 1

    # Another advocate's client and an unknown number look alike: not found, and nothing sent.
    for number in (THEIRS, UNKNOWN):
        screen = await advocate.get(f"/dev/phone/{number}")
        assert screen.status_code == 404 and "No client of yours has this number." in screen.text
        assert (await advocate.get(f"/dev/phone/{number}", headers={"HX-Request": "true"})).status_code == 404
        assert (await advocate.post(f"/dev/phone/{number}", {"body": "Sneaky"})).status_code == 404
        opened = await advocate.post("/dev/phone", {"number": number})
        assert opened.status_code == 404 and "No client of yours has this number." in opened.text
        assert f'value="{number}"' in opened.text  # what was typed stays
    assert await Message.filter(from_number__in=[THEIRS, UNKNOWN]).count() == 0
    assert (await advocate.post("/dev/phone", {"number": "(404) 538-7319"})).headers["location"] == f"/dev/phone/{MINE}"


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisors_and_admins_play_any_number_unknown_ones_included(dev_office, role: str) -> None:
    staff = await dev_office(role)
    index = await staff.get("/dev/phone")
    assert f'href="/dev/phone/{MINE}"' in index.text and f'href="/dev/phone/{THEIRS}"' in index.text
    assert "Or any number (an unknown sender)" in index.text
    for number in (MINE, THEIRS, UNKNOWN):
        assert (await staff.get(f"/dev/phone/{number}")).status_code == 200
        assert (await staff.post(f"/dev/phone/{number}", {"body": f"From {number}"})).status_code == 303
        opened = await staff.post("/dev/phone", {"number": number})
        assert opened.status_code == 303 and opened.headers["location"] == f"/dev/phone/{number}"
    assert await Message.filter(body__startswith="From ").count() == 3


async def test_a_sender_that_is_not_a_phone_number_texts_in_exactly_as_typed(dev_office) -> None:
    staff = await dev_office("supervisor")
    index = await staff.get("/dev/phone")
    assert "whatsapp:+14155550100" in index.text  # the page says what may be typed
    for sender in ("whatsapp:+14155550100", "CourtAlert"):
        opened = await staff.post("/dev/phone", {"number": f" {sender} "})
        assert opened.status_code == 303 and opened.headers["location"] == f"/dev/phone/{sender}"
        screen = await staff.get(f"/dev/phone/{sender}")
        assert screen.status_code == 200 and f"<h1>{sender}</h1>" in screen.text
        assert (await staff.post(f"/dev/phone/{sender}", {"body": f"From {sender}"})).status_code == 303
        message = await Message.get(body=f"From {sender}")
        assert message.from_number == sender  # not the phone number inside the address
    assert not await Message.filter(from_number="+14155550100").exists()

    refused = await staff.post("/dev/phone", {"number": "court/alert"})
    assert refused.status_code == 422 and "cannot be played" in refused.text and 'value="court/alert"' in refused.text
    advocate = await dev_office("advocate")  # plays only their clients' phone numbers
    for typed in ("whatsapp:+14155550100", f"whatsapp:{MINE}"):
        response = await advocate.post("/dev/phone", {"number": typed})
        assert response.status_code == 422 and "is not a phone number" in response.text
        assert (await advocate.get(f"/dev/phone/{typed}")).status_code == 422


async def test_the_phone_screen_answers_htmx_with_the_screen_alone_and_says_so(dev_office) -> None:
    staff = await dev_office("advocate")
    page = await staff.get(f"/dev/phone/{MINE}")
    screen = await staff.get(f"/dev/phone/{MINE}", headers={"HX-Request": "true"})
    assert "<html" in page.text and screen.text.lstrip().startswith('<ol id="phone-screen"')
    for response in (page, screen):
        assert "HX-Request" in response.headers["vary"]


async def test_the_phone_has_a_heading_a_focusable_screen_the_picked_photo_and_the_photos_it_sent(dev_office) -> None:
    staff = await dev_office("admin")
    screen = await staff.get(f"/dev/phone/{MINE}")
    page = screen.text
    assert "<h1>(404) 538-7319</h1>" in page
    # The screen scrolls: a keyboard must reach it, and it is named.
    assert '<ol id="phone-screen" class="messages phone-screen" tabindex="0" aria-label="Texts on this phone"' in page
    # The paperclip's field is visually hidden, not `hidden` (a keyboard reaches it); static/phone.js shows the
    # picked photo in #phone-photo before it is sent.
    field = page[page.index('<input type="file" name="photo"') :]
    field = field[: field.index(">") + 1]
    assert 'class="sr-only"' in field and 'data-photo-preview="phone-photo"' in field and " hidden" not in field
    assert '<p id="phone-photo" class="phone-photo" aria-live="polite" hidden></p>' in page

    assert (await staff.post(f"/dev/phone/{MINE}", {"body": "Here is the letter"})).status_code == 303
    sent = await Message.get(from_number=MINE, direction=Direction.INBOUND)
    photo = await Media.create(
        message=sent, content_type="image/png", filename="letter.png", sha256="ab" * 32, status=MediaStatus.STORED
    )
    pdf = await Media.create(
        message=sent, position=1, content_type="application/pdf", filename="lease.pdf", sha256="cd" * 32
    )
    again = (await staff.get(f"/dev/phone/{MINE}", headers={"HX-Request": "true"})).text
    assert f'<img src="/media/{photo.id}" alt="Photo 1" class="phone-media">' in again
    assert "Attachment: lease.pdf" in again and f"/media/{pdf.id}" not in again
    assert sent.status == MessageStatus.RECEIVED
