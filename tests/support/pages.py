"""Reading the app's HTML the way a person reads a page: its words, a form's fields, a list's rows."""

from __future__ import annotations

import re
from html import unescape


def words(html: str) -> str:
    """The text a person reads: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def textarea(html: str, name: str = "body") -> str:
    """What the form's <textarea> holds, as the person sees it."""
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', html, re.DOTALL)
    assert match, f"no <textarea name={name}>"
    return unescape(match.group(1))


def row_ids(html: str, kind: str = "conversation") -> list[int]:
    """The ids of a list's rows (`<li id="conversation-12">`, `<li id="alert-3">`) in the order it shows them."""
    return [int(i) for i in re.findall(rf'<li id="{kind}-(\d+)"', html)]


def deferred_list_url(html: str) -> str:
    """Where a conversation page's inbox list comes from: beside a thread it is an empty list that fetches
    itself once the page has loaded (templates/inbox/_conversation_list.html) — what a browser would ask."""
    match = re.search(r'<ul id="conversation-list"[^>]*?\shx-get="([^"]+)" hx-trigger="load"', html, re.DOTALL)
    assert match, "the page has no list fetched after it"
    assert not row_ids(html), "the list's rows came with the page"
    return unescape(match.group(1))
