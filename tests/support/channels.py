"""A second office's sending number: its own Twilio account, token and number, beside the test app's own."""

from __future__ import annotations

from inbox.services.channels import ChannelForm

SECOND_SID = "AC" + "2" * 32
SECOND_TOKEN = "second-office-token-7e1f0c9a4b2d"
SECOND_NUMBER = "+14045550123"

# The admin page's form for it, filled in as an admin would.
VALID_FORM = ChannelForm(
    label="Housing unit",
    account_sid=SECOND_SID,
    auth_token=SECOND_TOKEN,
    from_number="(404) 555-0123",
    throughput="1",
    time_zone="America/New_York",
)
