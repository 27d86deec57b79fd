"""A survey already sent, built directly from the rows the campaigns service writes (Campaign, one
CampaignRecipient per client, and each recipient's outbound text, delivered, in the client's conversation):
the survey side is tested without depending on how campaigns are composed and started."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from inbox import clock
from inbox.models import (
    Campaign,
    CampaignRecipient,
    CampaignState,
    Channel,
    Conversation,
    Direction,
    Message,
    MessagePurpose,
    MessageStatus,
    OutboxState,
)

from .records import CaseFile

HOW_DID_WE_DO = [
    {"answer": "1", "label": "Very helpful"},
    {"answer": "2", "label": "Somewhat helpful"},
    {"answer": "YES", "label": "I would recommend you"},
]


async def sent_survey(
    channel: Channel,
    recipients: Sequence[tuple[CaseFile, str]],
    *,
    options: list[dict[str, Any]] | None = None,
    sent_at: datetime | None = None,
    reply_window_days: int = 7,
    replies_raise_alerts: bool = False,
    name: str = "How did we do?",
    status: MessageStatus = MessageStatus.DELIVERED,
    outbox_state: OutboxState | None = None,
) -> Campaign:
    """A survey sent `sent_at` (an hour ago unless told) to each (case, number): its texts delivered."""
    sent_at = sent_at or clock.now() - timedelta(hours=1)
    body = "How did we do? Reply 1 (very helpful), 2 (somewhat) or YES if you would recommend us."
    campaign = await Campaign.create(
        name=name,
        body=body,
        state=CampaignState.FINISHED,
        channel=channel,
        answer_options=HOW_DID_WE_DO if options is None else options,
        reply_window_days=reply_window_days,
        replies_raise_alerts=replies_raise_alerts,
        started_at=sent_at,
        finished_at=sent_at,
    )
    for case, number in recipients:
        conversation, _ = await Conversation.get_or_create(channel=channel, phone=number)
        message = await Message.create(
            conversation=conversation,
            direction=Direction.OUTBOUND,
            from_number=channel.from_number or "",
            to_number=number,
            body=body,
            status=status,
            provider_sid="SM" + secrets.token_hex(16),
            case_id=case.case_id,
            purpose=MessagePurpose.CAMPAIGN,
            campaign=campaign,
            first_attempt_at=sent_at,
            outbox_state=outbox_state,
        )
        await CampaignRecipient.create(
            campaign=campaign, client_id=case.client_id, case_id=case.case_id, number=number, message=message
        )
    return campaign
