"""The inbox in a real browser, as people use it at once: an advocate (Alice), a supervisor (Sam) and the client
phone (the simulator, played by the admin), each in a browser context of their own, against the demo served for
real (tests/support/browser.py). Every test also asserts that no page logged a console error.

The tests share one demo per module, so each texts as a client of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest
from playwright.async_api import Page, expect

from tests.support.attachments import png
from tests.support.browser import (
    PHONE_SIZE,
    WAIT_MS,
    ConsoleWatch,
    CuttableProxy,
    DemoServer,
    sign_in,
    stream_open,
)

pytestmark = pytest.mark.browser

ALICE, SAM, ADA = "alice@example.org", "sam@example.org", "ada@example.org"
MARIA, JAMES, DANA, ROSA = "+14045387319", "+14045550123", "+14045550106", "+14045550429"
_texts = itertools.count(1)


def unique(text: str) -> str:
    """A text no other test sends, so a test finds its own bubble."""
    return f"{text} #{next(_texts)}"


async def open_conversation(page: Page, client_name: str) -> str:
    """Opens the client's conversation from the inbox list; its thread's id (`thread-N`)."""
    await page.locator("#conversation-list a", has_text=client_name).first.click()
    await page.wait_for_url(re.compile(r"/conversations/\d+$"))
    await stream_open(page)
    return await page.locator("ol.messages").first.get_attribute("id") or ""


async def text_from_client(phone: Page, server: DemoServer, number: str, text: str) -> None:
    """The client texts the office from the client phone page (the simulator signs it like Twilio)."""
    if not phone.url.endswith(f"/dev/phone/{number}"):
        await phone.goto(f"{server.url}/dev/phone/{number}")
    await phone.locator("#phone-body").fill(text)
    await phone.locator("form.phone-reply").get_by_role("button", name="Send").click()
    await expect(phone.locator("#phone-screen")).to_contain_text(text)


async def test_a_reply_reaches_the_thread_and_both_dashboards_and_a_dismissal_clears_both(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    thread = await open_conversation(alice, "Maria Lopez")
    sam = await sign_in(await new_context(), demo, SAM, console)
    await sam.goto(demo.url + "/alerts")
    await stream_open(sam)
    phone = await sign_in(await new_context(), demo, ADA, console)

    text = unique("Can we meet before the hearing?")
    await text_from_client(phone, demo, MARIA, text)

    await expect(alice.locator(f"#{thread} .bubble.inbound", has_text=text)).to_be_visible(timeout=WAIT_MS)
    alice_alert = alice.locator("#alert-block .alert-row", has_text=text)
    sam_alert = sam.locator("#alert-dashboard .alert-row", has_text=text)
    await expect(alice_alert).to_be_visible()
    await expect(sam_alert).to_be_visible()
    await expect(sam.locator("#alert-badge")).to_have_text(re.compile(r"Alerts \(\d+\)"))

    await alice_alert.get_by_role("button", name="Dismiss").click()
    await expect(alice_alert).to_have_count(0)
    await expect(sam_alert).to_have_count(0)


async def test_after_a_cut_stream_the_thread_catches_up_and_says_it_was_reconnecting(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    # A stream cut on purpose: the browser reports the cut and the failed reconnects, and htmx logs the stream's
    # error event (as "[object Event]").
    console.allow(r"^\S+/events(\?\S*)?: error: Failed to load resource")
    console.allow(r"htmx-[\d.]+\.min\.js: error: (\[object Event\]|htmx:sseError)")
    async with CuttableProxy(demo.url) as proxy:
        alice = await sign_in(await new_context(), demo, ALICE, console, via=proxy.url)
        thread = await open_conversation(alice, "James Smith")
        phone = await sign_in(await new_context(), demo, ADA, console)
        notice = alice.locator("#reconnecting")
        await expect(notice).to_be_hidden()
        await expect(alice.locator("#alert-badge")).to_have_text(re.compile(r"Alerts \(\d+\)"))
        alerts_before = int(re.sub(r"\D", "", await alice.locator("#alert-badge").inner_text()))

        # The network drops: the open stream is cut, and every reconnect fails until it is back.
        stream = re.compile(r"/events(\?|$)")  # the page's stream says what it shows (/events?page=1&…)
        await alice.route(stream, lambda route: route.abort())
        assert proxy.cut("/events") == 1
        await expect(notice).to_be_visible(timeout=WAIT_MS)
        await expect(notice).to_contain_text("Reconnecting")

        text = unique("I sent the papers while you were offline")
        await text_from_client(phone, demo, JAMES, text)
        bubble = alice.locator(f"#{thread} .bubble.inbound", has_text=text)
        row = alice.locator("#conversation-list .conversation-row", has_text="James Smith")
        alert = alice.locator("#alert-block .alert-row", has_text=text)
        await alice.wait_for_timeout(500)
        await expect(bubble).to_have_count(0)  # nothing can reach the tab meanwhile
        await expect(alert).to_have_count(0)

        await alice.unroute(stream)
        # Caught up, without reloading the page: the thread, the list, the alerts and the badge.
        await expect(bubble).to_be_visible(timeout=WAIT_MS)
        await expect(row).to_contain_text(text[:20])
        await expect(alert).to_be_visible()
        # One open alert per conversation and case: James's text joins his open alert, or opens one.
        badge = await (await alice.context.request.get(f"{demo.url}/alerts/badge")).text()
        now_open = int(re.sub(r"\D", "", re.sub(r"<[^>]*>", "", badge)) or 0)
        assert now_open in (alerts_before, alerts_before + 1)
        await expect(alice.locator("#alert-badge")).to_have_text(f"Alerts ({now_open})")
        await expect(notice).to_be_hidden()
        await expect(alice.locator("body")).to_have_attribute("data-stream", "open")


async def test_stop_replaces_the_composer_live_with_the_reason_and_start_brings_it_back(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    thread = await open_conversation(alice, "Dana Whitfield")
    conversation_id = thread.removeprefix("thread-")
    phone = await sign_in(await new_context(), demo, ADA, console)
    composer = alice.locator("#composer")
    refusal = alice.locator(f"#composer-refusal-{conversation_id} .refused")
    await expect(composer).to_be_visible()
    await expect(refusal).to_have_count(0)
    await alice.locator("#composer-body").fill("Your hearing moved to Friday.")

    await text_from_client(phone, demo, DANA, "STOP")
    await expect(refusal).to_be_visible(timeout=WAIT_MS)
    await expect(refusal).to_contain_text("opted out")
    await expect(refusal).to_contain_text("START")  # what can be done
    await expect(composer).to_be_hidden()

    await text_from_client(phone, demo, DANA, "START")
    await expect(refusal).to_have_count(0, timeout=WAIT_MS)
    await expect(composer).to_be_visible()
    await expect(alice.locator("#composer-body")).to_have_value("Your hearing moved to Friday.")  # kept meanwhile


async def test_a_reader_who_scrolled_up_keeps_their_place_and_is_told_of_a_new_message(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(viewport={"width": 1280, "height": 520}), demo, ALICE, console)
    thread = await open_conversation(alice, "Maria Lopez")
    phone = await sign_in(await new_context(), demo, ADA, console)
    messages = alice.locator(f"#{thread}")
    for n in range(4):  # enough texts that the thread scrolls; at the bottom, it follows each one
        text = unique(f"Maria's update {n}")
        await text_from_client(phone, demo, MARIA, text)
        await expect(messages.locator(".bubble", has_text=text)).to_be_in_viewport(timeout=WAIT_MS)
    assert await messages.evaluate("list => list.scrollHeight > list.clientHeight + 100")

    await messages.hover()
    await alice.mouse.wheel(0, -5000)
    await expect(messages).to_have_attribute("data-at-bottom", "false")
    place = await messages.evaluate("list => list.scrollTop")
    text = unique("One more thing")
    await text_from_client(phone, demo, MARIA, text)
    bubble = messages.locator(".bubble", has_text=text)
    marker = alice.get_by_role("button", name="New message ↓")
    await expect(marker).to_be_visible(timeout=WAIT_MS)
    assert await messages.evaluate("list => list.scrollTop") == place  # the reader's place is kept
    await expect(bubble).not_to_be_in_viewport()

    await marker.click()
    await expect(bubble).to_be_in_viewport()
    await expect(marker).to_be_hidden()


async def conversation_url(page: Page, demo: DemoServer, client_name: str) -> str:
    """The address of the client's conversation, read from the inbox list."""
    await page.goto(demo.url + "/")
    href = await page.locator("#conversation-list a", has_text=client_name).first.get_attribute("href")
    return demo.url + (href or "")


async def test_a_keyboard_only_reply(demo: DemoServer, new_context, console: ConsoleWatch) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    await alice.goto(await conversation_url(alice, demo, "James Smith"))
    await stream_open(alice)
    box = alice.locator("#composer-body")
    await expect(box).to_be_focused()  # the cursor is in the reply box as the conversation opens

    # From the top of the page, the second stop is the skip link to the reply box.
    await alice.locator("a.brand").focus()
    await alice.keyboard.press("Shift+Tab")
    await alice.keyboard.press("Shift+Tab")
    await expect(alice.get_by_role("link", name="Skip to content")).to_be_focused()
    await alice.keyboard.press("Tab")
    await expect(alice.get_by_role("link", name="Skip to the reply box")).to_be_focused()
    await alice.keyboard.press("Enter")
    await expect(box).to_be_focused()

    text = unique("Typed with the keyboard only.")
    await alice.keyboard.type(text)
    await alice.keyboard.press("Control+Enter")
    thread = await alice.locator("ol.messages").first.get_attribute("id")
    await expect(alice.locator(f"#{thread} .bubble.outbound", has_text=text)).to_be_visible(timeout=WAIT_MS)
    await expect(box).to_have_value("")
    await expect(box).to_be_focused()  # back in the reply box for the next text


async def test_over_the_limit_keeps_what_was_typed_and_says_why_send_is_off(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    await alice.goto(await conversation_url(alice, demo, "Maria Lopez"))
    box, counter = alice.locator("#composer-body"), alice.locator("#composer-count")
    send = alice.locator("#composer .composer-foot").get_by_role("button", name="Send")
    limit = int(re.search(r"/ (\d+) characters", await counter.inner_text()).group(1))  # type: ignore[union-attr]

    too_long = "x" * (limit + 12)
    await box.fill(too_long)  # as a paste does
    await expect(box).to_have_value(too_long)  # nothing dropped
    await expect(counter).to_contain_text("12 too many")
    await expect(counter).to_have_class(re.compile("over-limit"))
    await expect(counter).to_have_css("color", "rgb(179, 38, 30)")  # red
    await expect(send).to_be_disabled()

    await box.press("End")
    for _ in range(12):
        await box.press("Backspace")
    await expect(send).to_be_enabled()
    await expect(counter).not_to_have_class(re.compile("over-limit"))


async def test_while_sending_send_is_off_and_spins_and_the_last_error_is_gone(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    await alice.goto(await conversation_url(alice, demo, "Maria Lopez"))
    composer = alice.locator("#composer")
    send = composer.locator(".composer-foot").get_by_role("button", name="Send")
    # Nothing written: refused with the reason (a 422, which the browser notes in the console).
    console.allow(r"/messages: error: Failed to load resource: the server responded with a status of 422")
    await send.click()
    error = composer.locator(".error")
    await expect(error).to_be_visible()

    release = asyncio.Event()

    async def held(route):  # the network is slow: the send stays in flight until the test lets it go
        await release.wait()
        await route.continue_()

    await alice.route("**/messages", held)
    await alice.locator("#composer-body").fill(unique("Sent on a slow network"))
    await send.click()
    await expect(send).to_be_disabled()
    await expect(composer).to_have_class(re.compile("sending"))
    await expect(error).to_have_count(0)  # the earlier error is cleared at once
    release.set()
    await expect(alice.locator("#composer-body")).to_have_value("", timeout=WAIT_MS)
    await expect(alice.locator("#composer .composer-foot").get_by_role("button", name="Send")).to_be_enabled()


async def test_the_inbox_at_phone_width_does_not_scroll_sideways(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(viewport=PHONE_SIZE, is_mobile=True, has_touch=True), demo, ALICE, console)
    await expect(alice.locator("#conversation-list")).to_be_visible()
    assert await alice.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]
    await alice.locator("#conversation-list a", has_text="Maria Lopez").first.click()
    await expect(alice.locator("#composer-body")).to_be_visible()
    assert await alice.evaluate("document.documentElement.scrollWidth") <= PHONE_SIZE["width"]


async def test_a_tall_photo_arrives_whole_at_the_end_of_a_thread(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    thread = await open_conversation(alice, "James Smith")
    phone = await sign_in(await new_context(), demo, ADA, console)

    await phone.goto(f"{demo.url}/dev/phone/{JAMES}")
    await phone.locator("input[name=photo]").set_input_files(
        {"name": "lease.png", "mimeType": "image/png", "buffer": png(300, 900)}
    )
    text = unique("The lease, page 1")
    await text_from_client(phone, demo, JAMES, text)

    bubble = alice.locator(f"#{thread} .bubble.inbound", has_text=text)
    photo = bubble.locator("img")
    await expect(photo).to_have_attribute("height", "900", timeout=WAIT_MS)  # the box is reserved before it loads
    await expect(photo).to_have_js_property("complete", True)
    assert await photo.evaluate("img => img.naturalHeight") == 900
    await expect(bubble).to_be_in_viewport(ratio=1)  # nothing cut off below the fold


async def test_live_updates_log_no_console_errors_on_any_page(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    # Sam's tabs, three to a browser context: each tab holds an event stream, and Chromium opens at most six
    # HTTP/1.1 connections to one server per context (behind an HTTP/2 proxy the limit is gone).
    pages: dict[str, Page] = {}
    for tabs in (
        [("inbox", "/", None), ("alerts", "/alerts", None), ("queue", "/queue", None)],
        [("client", "/clients", "Rosa Diaz"), ("case", "/cases", "16E-20010106"), ("clients", "/clients", None)],
    ):
        context = await new_context()
        first = await sign_in(context, demo, SAM, console)
        for n, (name, path, link) in enumerate(tabs):
            page = first if n == 0 else console.watch(await context.new_page())
            await page.goto(demo.url + path)
            if link:
                await page.get_by_role("link", name=link).first.click()
                await page.wait_for_load_state()
            pages[name] = page
    for page in pages.values():
        await stream_open(page)
    phone = await sign_in(await new_context(), demo, ADA, console)

    # A text (a bubble, a row, an alert, badges), then STOP and START (notices, consent blocks, ledger rows).
    text = unique("Is the shut-off notice real?")
    await text_from_client(phone, demo, ROSA, text)
    await expect(pages["alerts"].locator(".alert-row", has_text=text)).to_be_visible(timeout=WAIT_MS)
    await text_from_client(phone, demo, ROSA, "STOP")
    await expect(pages["client"].locator(".consent-state")).to_contain_text("opted out", timeout=WAIT_MS)
    await text_from_client(phone, demo, ROSA, "START")
    await expect(pages["client"].locator(".consent-state")).not_to_contain_text("opted out", timeout=WAIT_MS)
    await pages["alerts"].locator(".alert-row", has_text=text).get_by_role("button", name="Dismiss").click()
    await expect(pages["inbox"].locator("#alert-block .alert-row", has_text=text)).to_have_count(0, timeout=WAIT_MS)
    await pages["inbox"].wait_for_timeout(500)  # the last fragments reach every tab; the console fixture checks them
