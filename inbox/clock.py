"""The one clock: every "now" the app acts on comes from here.

Code that decides by the time (office hours, quiet hours, a scheduled text's moment) takes it as an
argument — `at` or `now` — so tests pass a fixed moment instead of waiting; `app.state.clock` is
this function unless a test replaces it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
