"""Quick entries: their administration, and filling one in for a composer (a thread's or a case's "Send text")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.models import Case, Staff
from inbox.routes.guards import record_id
from inbox.services import directory, messaging, organisation, quick_entries
from inbox.services.errors import NotFound, ServiceError
from inbox.services.queue import organisation_zone
from inbox.services.quick_entries import QuickEntryInput
from inbox.web import checked_form, render, require_admin, require_staff

# The two composers: the ids their message fields and counters carry (the fill fragment keeps them).
COMPOSER_FIELDS = {
    "thread": {"wrap": "composer-body-wrap", "textarea": "composer-body", "counter": "composer-count", "rows": 3},
    "case": {"wrap": "text-body-wrap", "textarea": "text-body", "counter": "text-count", "rows": 4},
}


def _int(value: object) -> int | None:
    return record_id(value)


# ---------------------------------------------------------------- administration


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "change quick entries")


def _form_context(
    entry_id: int | None, data: QuickEntryInput, errors: dict[str, str], char_limit: int
) -> dict[str, object]:
    return {
        "entry_id": entry_id,
        "data": data,
        "errors": errors,
        "char_limit": char_limit,
        "placeholders": quick_entries.PLACEHOLDERS,
    }


async def entry_list(request: Request) -> Response:
    await _admin(request)
    context = {
        "entries": await quick_entries.all_entries(),
        "placeholders": quick_entries.PLACEHOLDERS,
        "saved": request.query_params.get("saved"),
    }
    return render(request, "admin/quick_entries.html", context)


async def new_entry_form(request: Request) -> Response:
    await _admin(request)
    blank = QuickEntryInput(name=request.query_params.get("name", ""), language="", body="")
    return render(
        request, "admin/quick_entries_form.html", _form_context(None, blank, {}, await organisation.text_limit())
    )


def _input_of(form: object) -> QuickEntryInput:
    get = form.get  # type: ignore[attr-defined]
    return QuickEntryInput(
        name=str(get("name", "")),
        language=str(get("language", "")),
        body=str(get("body", "")),
        position=str(get("position", "0")),
    )


async def create_entry(request: Request) -> Response:
    staff = await _admin(request)
    data = _input_of(await checked_form(request))
    try:
        await quick_entries.create_entry(staff, data)
    except ServiceError as exc:
        context = _form_context(None, data, exc.fields or {"name": exc.message}, await organisation.text_limit())
        return render(request, "admin/quick_entries_form.html", context, status_code=exc.status)
    return RedirectResponse("/admin/quick-entries?saved=created", status_code=303)


async def edit_entry_form(request: Request) -> Response:
    await _admin(request)
    entry = await quick_entries.get_entry(request.path_params["entry_id"])
    data = QuickEntryInput(entry.name, entry.language or "", entry.body, str(entry.position))
    return render(
        request, "admin/quick_entries_form.html", _form_context(entry.id, data, {}, await organisation.text_limit())
    )


async def update_entry(request: Request) -> Response:
    staff = await _admin(request)
    entry_id = request.path_params["entry_id"]
    data = _input_of(await checked_form(request))
    try:
        await quick_entries.update_entry(staff, entry_id, data)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise
        context = _form_context(entry_id, data, exc.fields or {"name": exc.message}, await organisation.text_limit())
        return render(request, "admin/quick_entries_form.html", context, status_code=exc.status)
    return RedirectResponse("/admin/quick-entries?saved=updated", status_code=303)


async def delete_entry(request: Request) -> Response:
    staff = await _admin(request)
    await checked_form(request)
    await quick_entries.delete_entry(staff, request.path_params["entry_id"])
    return RedirectResponse("/admin/quick-entries?saved=deleted", status_code=303)


# ---------------------------------------------------------------- composers


async def picker(request: Request) -> Response:
    """The quick entry list of a thread's composer, fetched when the composer loads (htmx)."""
    staff = await require_staff(request)
    conversation = await messaging.conversation_for(staff, _int(request.query_params.get("conversation_id")) or 0)
    context = {"choices": await quick_entries.choices(), "conversation": conversation, "form": "thread"}
    return render(request, "inbox/_quick_entry_picker.html", context)


async def fill(request: Request) -> Response:
    """A composer's message field, filled in with the chosen entry for its client and case, and the warnings."""
    staff = await require_staff(request)
    params = request.query_params
    form = str(params.get("form")) if params.get("form") in COMPOSER_FIELDS else "thread"
    entry_id = _int(params.get("quick_entry"))
    if entry_id is None:
        return Response(status_code=204)  # "choose…" again: leave the text as it is
    case_id = _int(params.get("case_id"))
    if form == "case":
        filled = await quick_entries.fill_for_case(staff, entry_id, case_id or 0)
    else:
        filled = await quick_entries.fill_for_conversation(
            staff, entry_id, _int(params.get("conversation_id")) or 0, case_id
        )
    context = {
        "field": COMPOSER_FIELDS[form],
        "body": filled.text,
        "warnings": filled.warnings,
        "char_limit": filled.char_limit,
        "required": form == "case",
    }
    return render(request, "inbox/_composer_body.html", context)


async def case_text_page(
    request: Request,
    case: Case,
    body: str = "",
    to: str = "",
    error: str | None = None,
    status_code: int = 200,
    send_at: str = "",
    time_zone: str | None = None,
) -> Response:
    """The case's "Send text" page: quick entries (`?quick_entry=<id>` fills one in without JavaScript),
    the number, the text, and sending now or later. `case` has its client's phones fetched."""
    staff = await require_staff(request)
    warnings: list[str] = []
    chosen = _int(request.query_params.get("quick_entry"))
    if chosen is not None and not body and request.method == "GET":
        filled = await quick_entries.fill_for_case(staff, chosen, case.id)
        body, warnings = filled.text, filled.warnings
    default = directory.mobile_of(case.client)
    zone = await organisation_zone()
    context = {
        "case": case,
        "phones": list(case.client.phones),
        "to": to or (default.number if default else ""),
        "body": body,
        "error": error,
        "char_limit": await organisation.text_limit(),
        "choices": await quick_entries.choices(),
        "chosen": chosen,
        "warnings": warnings,
        "send_at": send_at,
        "time_zone": time_zone or zone,
        "organisation_zone": zone,
        "field": COMPOSER_FIELDS["case"],
    }
    return render(request, "cases/text.html", context, status_code=status_code)


routes = [
    Route("/admin/quick-entries", entry_list, methods=["GET"]),
    Route("/admin/quick-entries", create_entry, methods=["POST"]),
    Route("/admin/quick-entries/new", new_entry_form, methods=["GET"]),
    Route("/admin/quick-entries/{entry_id:int}", edit_entry_form, methods=["GET"]),
    Route("/admin/quick-entries/{entry_id:int}", update_entry, methods=["POST"]),
    Route("/admin/quick-entries/{entry_id:int}/delete", delete_entry, methods=["POST"]),
    Route("/quick-entries/picker", picker, methods=["GET"]),
    Route("/quick-entries/fill", fill, methods=["GET"]),
]
