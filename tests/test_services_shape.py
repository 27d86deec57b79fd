"""The shape of the services: events go out after commit by a mechanism (the unit of work), no import
cycles, messaging writes every text."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest
from starlette.applications import Starlette
from tortoise.transactions import in_transaction

from inbox.events import Event, SessionEnded, Subscription
from inbox.models import Office
from inbox.services.unit_of_work import current_unit, unit_of_work

SERVICES = Path(__file__).resolve().parent.parent / "inbox" / "services"


def marker(name: str) -> SessionEnded:
    return SessionEnded(session_id=name)  # an event no tab acts on: the hub has nothing to load for it


async def next_or_none(subscription: Subscription, seconds: float = 0.2) -> Event | None:
    try:
        async with asyncio.timeout(seconds):
            return await subscription.get()
    except TimeoutError:
        return None


# ---------------------------------------------------------------- the unit of work


async def test_events_reach_the_bus_only_after_their_rows_are_committed(app: Starlette) -> None:
    bus = app.state.bus
    heard = asyncio.Event()
    seen: list[tuple[Event, bool]] = []
    async with bus.subscribe() as subscription:

        async def subscriber() -> None:
            event = await subscription.get()
            heard.set()
            # What a tab does when told: load the row the event names. It must be there.
            seen.append((event, await Office.exists(name="Committed first")))

        listening = asyncio.create_task(subscriber())
        async with unit_of_work(bus) as uow:
            await Office.create(name="Committed first")
            uow.publish(marker("office created"))
            await asyncio.sleep(0.1)  # every chance for the subscriber to run while the transaction is open
            assert not heard.is_set(), "an event was published before its transaction committed"
            await Office.create(name="Written after the publish call")
        async with asyncio.timeout(5):
            await listening
    assert seen == [(marker("office created"), True)]


async def test_an_event_of_a_unit_that_rolls_back_never_reaches_the_bus(app: Starlette) -> None:
    bus = app.state.bus
    async with bus.subscribe() as subscription:
        with pytest.raises(RuntimeError, match="the work failed"):
            async with unit_of_work(bus) as uow:
                await Office.create(name="Rolled back")
                uow.publish(marker("rolled back"))
                raise RuntimeError("the work failed")
        await bus.publish(marker("after"))
        assert await next_or_none(subscription) == marker("after")
    assert not await Office.exists(name="Rolled back")


async def test_a_nested_unit_joins_the_outer_one(app: Starlette) -> None:
    bus = app.state.bus
    async with bus.subscribe() as subscription:
        async with unit_of_work(bus) as outer:
            outer.publish(marker("outer"))
            async with unit_of_work(bus) as inner:
                assert inner is outer and current_unit() is outer
                current_unit().publish(marker("inner"))
            assert await next_or_none(subscription, 0.05) is None  # the inner one's end is no commit
        assert [await next_or_none(subscription), await next_or_none(subscription)] == [
            marker("outer"),
            marker("inner"),
        ]

        with pytest.raises(RuntimeError):
            async with unit_of_work(bus) as outer:
                await Office.create(name="Outer write")
                async with unit_of_work(bus) as inner:
                    inner.publish(marker("inner of a failed unit"))
                    raise RuntimeError("inner failure")
        assert await next_or_none(subscription) is None
    assert not await Office.exists(name="Outer write")


async def test_publishing_outside_a_unit_or_opening_one_in_a_bare_transaction_is_refused(app: Starlette) -> None:
    with pytest.raises(RuntimeError, match="No unit of work"):
        current_unit()
    async with in_transaction():
        with pytest.raises(RuntimeError, match="bare transaction"):
            async with unit_of_work(app.state.bus):
                pass


# ---------------------------------------------------------------- the import graph


def service_imports() -> dict[str, set[str]]:
    """Each services module → the services modules it imports (anywhere in the file)."""
    modules = {path.stem for path in SERVICES.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((SERVICES / f"{name}.py").read_text())
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "inbox.services":
                    found |= {alias.name for alias in node.names}
                elif node.module.startswith("inbox.services."):
                    found.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("inbox.services.")}
        graph[name] = found & modules - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_services_import_each_other_without_a_cycle() -> None:
    graph = service_imports()
    assert {"messaging", "consent", "linking", "inbound"} <= set(graph)
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])
    # Consent decides; it leans on no module that writes texts.
    assert not graph["consent"] & {"messaging", "inbound", "system_texts", "queue", "linking"}


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_messaging_and_the_outbox_write_texts() -> None:
    """Message rows and their timeline are created in messaging, and moved along by the outbox as they are
    sent, alone (the demo's sample data aside)."""
    writers = set()
    for path in SERVICES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "create"
                and isinstance(node.value, ast.Name)
                and node.value.id in {"Message", "MessageStatusEvent"}
            ):
                writers.add(path.stem)
    assert writers == {"messaging", "outbox", "demo"}


def test_only_a_unit_of_work_hands_events_to_the_bus() -> None:
    """Every service publishes through a unit of work (after its commit), never on the bus itself."""
    publishers = set()
    for path in SERVICES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            publishing = {"publish", "publish_all"}
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in publishing:
                receiver = node.func.value
                if (isinstance(receiver, ast.Attribute) and receiver.attr == "bus") or (
                    isinstance(receiver, ast.Name) and receiver.id == "bus"
                ):
                    publishers.add(path.stem)
    assert publishers == {"unit_of_work"}
