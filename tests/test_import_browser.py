"""The import page in a real browser against the demo served for real: htmx posts the chosen files, the progress
panel polls until the report is in, and the form keeps the files and the choice for the next try."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support.browser import ConsoleWatch, DemoServer, sign_in
from tests.support.paths import REPO

pytestmark = pytest.mark.browser

ADA = "ada@example.org"
SAMPLES = [
    str(REPO / "docs" / "import" / name) for name in ("clients.csv", "cases.csv", "assignments.csv", "events.csv")
]


async def test_a_dry_run_then_the_import_from_the_upload_page(
    demo: DemoServer, new_context, console: ConsoleWatch
) -> None:
    page = await sign_in(await new_context(), demo, ADA, console)
    await page.goto(demo.url + "/admin/settings")
    await page.get_by_role("link", name="Import").click()
    await page.wait_for_url(demo.url + "/admin/import")
    await page.get_by_label("Files", exact=True).set_input_files(SAMPLES)
    await page.get_by_role("button", name="Start").click()  # a dry run: the first choice
    panel = page.locator("#import-job")
    await expect(panel).to_contain_text("Dry run: nothing was written")
    await expect(panel).to_contain_text("clients: created 3, updated 0, unchanged 0")
    assert page.url == demo.url + "/admin/import"  # htmx: the page stayed, and so did the form
    assert await page.get_by_label("Files", exact=True).evaluate("input => input.files.length") == 4

    await page.get_by_label("Import", exact=True).check()
    await page.get_by_role("button", name="Start").click()
    await expect(panel).to_contain_text("Imported.")
    await expect(panel).to_contain_text("events: created 2, updated 0, unchanged 0")
    await page.get_by_role("button", name="Start").click()  # the same files again: nothing changes
    await expect(panel).to_contain_text("clients: created 0, updated 0, unchanged 3")
    await expect(panel).to_contain_text("events: created 0, updated 0, unchanged 2")
