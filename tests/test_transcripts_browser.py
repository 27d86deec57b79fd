"""The case transcript printed from a real browser: Chromium against the demo served for real
(tests/support/browser.py), the print stylesheet applied with `emulate_media`, and a PDF made of it."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.support.browser import ConsoleWatch, DemoServer, sign_in

pytestmark = pytest.mark.browser

ALICE = "alice@example.org"


async def test_the_case_transcript_prints_without_the_menu_and_makes_a_pdf(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    await alice.goto(demo.url + "/cases")
    await alice.get_by_role("link", name=re.compile("16E-20010101")).first.click()
    await alice.get_by_role("link", name="Transcript").click()
    await alice.wait_for_url(re.compile(r"/cases/\d+/transcript$"))

    heading = alice.locator("h1")
    await expect(heading).to_contain_text("Transcript · Case 16E-20010101 · Maria Lopez")
    await expect(alice.locator("header.top nav")).to_be_visible()  # on screen, the menu is there
    await expect(alice.locator("#print-transcript")).to_be_visible()  # the script showed the Print button
    await expect(alice.locator(".transcript-entries .entry").first).to_be_visible()

    await alice.emulate_media(media="print")
    await expect(alice.locator("header.top")).to_be_hidden()
    await expect(alice.locator("header.top nav")).to_be_hidden()
    await expect(alice.locator("#print-transcript")).to_be_hidden()
    await expect(alice.locator(".transcript-actions")).to_be_hidden()
    await expect(heading).to_be_visible()  # the case number, the client and the printed-at time stay on top
    await expect(alice.locator(".transcript-facts")).to_contain_text("Printed")
    entry = alice.locator(".transcript-entries .entry").first
    await expect(entry).to_have_css("break-inside", "avoid")
    await expect(entry).to_have_css("color", "rgb(0, 0, 0)")
    await expect(alice.locator("body")).to_have_css("background-color", "rgb(255, 255, 255)")

    pdf = await alice.pdf(format="A4", print_background=False)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000
