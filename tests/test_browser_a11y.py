"""Every page as people see it, at a desk and on a phone: axe-core (pinned in tests/node) finds no serious or
critical accessibility violation, and no page scrolls sideways at phone width. Plus the search box keeps its
search while live updates arrive (issue 10, item 2), seen in the browser.

axe runs inside the page, so these contexts bypass the pages' Content-Security-Policy (which forbids injected
scripts); the policy itself is tested in tests/test_headers.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import PHONE_SIZE, WAIT_MS, ConsoleWatch, DemoServer, sign_in, stream_open

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
ALICE, ADA = "alice@example.org", "ada@example.org"
DANA = "+14045550106"
SEVERE = ("serious", "critical")

# The demo's pages, as the admin sees them (every page an advocate sees, and the managers' and admins' own).
ADMIN_PAGES = (
    "/",
    "/conversations/1",
    "/cases",
    "/cases/1",
    "/cases/1/events/new",
    "/clients",
    "/clients/1",
    "/alerts",
    "/queue",
    "/tasks",
    "/account",
    "/messages/1",
    "/campaigns",
    "/campaigns/new",
    "/campaigns/1",
    "/campaigns/1/results",
    "/admin/settings",
    "/admin/staff",
    "/admin/channels",
    "/admin/quick-entries",
    "/admin/reminders",
    "/admin/import",
    "/admin/audit",
    "/admin/webhooks",
    "/dev/phone",
    f"/dev/phone/{DANA}",
)


async def severe_violations(page: Page) -> list[str]:
    """axe's serious and critical violations on the page as it is now: "rule: N nodes (first target)"."""
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run()).violations.map(v => ({
            id: v.id, impact: v.impact, nodes: v.nodes.length, first: v.nodes[0].target.join(" ")}))"""
    )
    return [f"{v['id']}: {v['nodes']} nodes ({v['first']})" for v in found if v["impact"] in SEVERE]


async def sideways_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: nothing scrolls sideways)."""
    return int(await page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_every_page_has_no_serious_accessibility_violation_and_no_sideways_scroll(
    demo: DemoServer, new_context: Any, console: ConsoleWatch, size: str
) -> None:
    assert AXE.exists(), "axe-core is missing: bin/test installs tests/node's packages (npm ci)"
    options: dict[str, Any] = {"bypass_csp": True}
    if size == "phone":
        options["viewport"] = PHONE_SIZE
    anonymous = console.watch(await (await new_context(**options)).new_page())
    await anonymous.goto(demo.url + "/login")
    problems = {"/login": await severe_violations(anonymous)}
    page = await sign_in(await new_context(**options), demo, ADA, console)
    overflow: dict[str, int] = {}
    for path in ADMIN_PAGES:
        response = await page.goto(demo.url + path)
        assert response is not None and response.status == 200, path
        await page.wait_for_load_state("networkidle")
        problems[path] = await severe_violations(page)
        if size == "phone":
            overflow[path] = await sideways_overflow(page)
    assert {path: found for path, found in problems.items() if found} == {}
    assert {path: px for path, px in overflow.items() if px > 0} == {}


async def test_a_search_keeps_its_query_and_results_while_live_updates_arrive(
    demo: DemoServer, new_context: Any, console: ConsoleWatch
) -> None:
    alice = await sign_in(await new_context(), demo, ALICE, console)
    await alice.goto(demo.url + "/?filter=all&q=hearing")
    await stream_open(alice)  # the catch-up after the stream opens re-fetches the list: it must keep the search
    rows = alice.locator("#conversation-list .conversation-row")
    await expect(rows.first).to_be_visible()
    found = await rows.count()
    assert found >= 1
    await expect(alice.locator("#conversation-list mark").first).to_contain_text(re.compile("hearing", re.I))

    phone = await sign_in(await new_context(), demo, ADA, console)
    await phone.goto(f"{demo.url}/dev/phone/{DANA}")
    await phone.locator("#phone-body").fill("Thank you, see you soon")  # a live event that matches nothing
    await phone.locator("form.phone-reply").get_by_role("button", name="Send").click()
    await expect(phone.locator("#phone-screen")).to_contain_text("Thank you, see you soon")

    await alice.wait_for_timeout(2_000)
    await expect(alice.locator("input[name=q]")).to_have_value("hearing", timeout=WAIT_MS)
    await expect(rows).to_have_count(found)
    await expect(alice.locator("#conversation-list")).not_to_contain_text("Thank you, see you soon")
