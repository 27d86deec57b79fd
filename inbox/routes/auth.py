"""Sign in and out."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.services.staff import authenticate, end_session, new_session_id
from inbox.web import checked_form, current_staff, render


def safe_next(target: str | None) -> str:
    """Only paths inside the app, so the login form cannot be used to send people elsewhere."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


async def login_form(request: Request) -> Response:
    if await current_staff(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(
        request, "auth/login.html", {"email": "", "error": None, "next": request.query_params.get("next", "/")}
    )


async def login(request: Request) -> Response:
    form = await checked_form(request)
    email = str(form.get("email", ""))
    staff = await authenticate(email, str(form.get("password", "")))
    if staff is None:
        context = {
            "email": email,
            "error": "That email and password do not match an account.",
            "next": form.get("next", "/"),
        }
        return render(request, "auth/login.html", context, status_code=400)
    request.session.clear()  # a fresh session on sign-in: no fixation
    request.session["staff_id"] = staff.id
    request.session["sid"] = new_session_id()
    return RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)


async def logout(request: Request) -> Response:
    await checked_form(request)
    session_id = request.session.get("sid")
    request.session.clear()
    await end_session(request.app.state.bus, session_id)
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
