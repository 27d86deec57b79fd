"""Admin → Staff: list staff, add one (the generated password shown once), deactivate or reactivate."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inbox.models import Office, Role, Staff
from inbox.services.errors import ServiceError
from inbox.services.staff import create_staff, set_active, staff_list
from inbox.web import checked_form, render, require_admin

EMPTY_FORM = {"email": "", "name": "", "role": Role.ADVOCATE.value, "office_id": "", "mobile": ""}


async def _admin(request: Request) -> Staff:
    return await require_admin(request, "manage staff accounts")


async def _page(request: Request, status_code: int = 200, **context: object) -> Response:
    context.setdefault("form", EMPTY_FORM)
    context.setdefault("errors", {})
    context.setdefault("created", None)
    context.setdefault("notice", None)
    context["people"] = await staff_list()
    context["offices"] = await Office.all().order_by("name")
    context["roles"] = [role.value for role in Role]
    return render(request, "admin/staff.html", context, status_code=status_code)


async def staff_page(request: Request) -> Response:
    await _admin(request)
    return await _page(request)


async def add_staff(request: Request) -> Response:
    admin = await _admin(request)
    form = await checked_form(request)
    typed = {name: str(form.get(name, "")).strip() for name in EMPTY_FORM}
    office = await Office.get_or_none(id=int(typed["office_id"])) if typed["office_id"].isdigit() else None
    if typed["office_id"] and office is None:
        return await _page(request, 422, form=typed, errors={"office_id": "Choose an office from the list."})
    try:
        staff, password = await create_staff(
            email=typed["email"],
            name=typed["name"],
            role=typed["role"],
            mobile=typed["mobile"] or None,
            office=office,
            by=admin,
        )
    except ServiceError as exc:
        return await _page(request, exc.status, form=typed, errors=exc.fields)
    # Shown in this answer only: it is stored as a hash and cannot be shown again.
    return await _page(request, 201, created={"staff": staff, "password": password})


async def change_active(request: Request) -> Response:
    admin = await _admin(request)
    form = await checked_form(request)
    raw_id = request.path_params["staff_id"]
    active = form.get("active") == "1"
    try:
        staff = await set_active(request.app.state.bus, admin, raw_id, active)
    except ServiceError as exc:
        return await _page(request, exc.status, notice={"error": exc.message})
    verb = "reactivated" if active else "deactivated and signed out everywhere"
    return await _page(request, notice={"ok": f"{staff.name} is {verb}."})


routes = [
    Route("/admin/staff", staff_page, methods=["GET"]),
    Route("/admin/staff", add_staff, methods=["POST"]),
    Route("/admin/staff/{staff_id:int}/active", change_active, methods=["POST"]),
]
