"""Many clients at once for the bulk-text tests: inserted in bulk (set-up, not the subject)."""

from __future__ import annotations

from inbox.models import Case, Channel, Client, ClientPhone, PhoneKind


def numbered(n: int) -> str:
    return f"+1404555{n:04d}"


async def bulk_clients(count: int, first: int = 0, legal_problem: str = "Housing", **phone: bool) -> list[int]:
    """`count` clients with one mobile each and one case each, inserted in bulk (set-up, not the subject)."""
    clients = [Client(name=f"Client {first + n} Person") for n in range(count)]
    await Client.bulk_create(clients)
    ids = list(await Client.filter(name__startswith="Client ").order_by("id").values_list("id", flat=True))[-count:]
    await ClientPhone.bulk_create(
        [
            ClientPhone(
                client_id=cid, number=numbered(first + n), kind=PhoneKind.MOBILE, **({"okay_to_text": True} | phone)
            )
            for n, cid in enumerate(ids)
        ]
    )
    await Case.bulk_create(
        [
            Case(number=f"B-{first + n}", title="Bulk", client_id=cid, legal_problem=legal_problem)
            for n, cid in enumerate(ids)
        ]
    )
    return ids


async def fast_channels() -> None:
    """The test drains at once: the channel's throughput would otherwise pace it at one a second."""
    await Channel.all().update(throughput=100_000)
