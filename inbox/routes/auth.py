"""Sign in and out, and the Account page (own password, sign out everywhere)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from inbox.services import audit, sessions
from inbox.services.errors import ServiceError
from inbox.services.staff import change_password, check_credentials, normalise_email, save_reminder_settings
from inbox.services.throttle import Throttle, Throttled
from inbox.session_middleware import session_record
from inbox.web import checked_form, client_address, current_staff, render, require_staff


def safe_next(target: str | None) -> str:
    """Only paths inside the app, so the login form cannot be used to send people elsewhere."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _throttle(request: Request) -> Throttle:
    throttle: Throttle = request.app.state.throttle
    return throttle


def throttled(response: Response, refusal: Throttled) -> Response:
    response.headers["Retry-After"] = str(refusal.retry_after)
    return response


async def login_form(request: Request) -> Response:
    if await current_staff(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return render(
        request, "auth/login.html", {"email": "", "error": None, "next": request.query_params.get("next", "/")}
    )


async def login(request: Request) -> Response:
    form = await checked_form(request)
    email = str(form.get("email", ""))
    context = {"email": email, "next": form.get("next", "/")}
    throttle, address = _throttle(request), client_address(request)
    try:
        await throttle.begin_sign_in(normalise_email(email), address)
    except Throttled as refusal:
        return throttled(render(request, "auth/login.html", {**context, "error": refusal.message}, 429), refusal)
    staff = await check_credentials(email, str(form.get("password", "")))
    if staff is None:
        await audit.record(audit.Action.SIGN_IN_FAILED, None, None, email=normalise_email(email)[:200])
        await throttle.sign_in_failed(address)
        error = "That email and password do not match an account."
        return render(request, "auth/login.html", {**context, "error": error}, status_code=400)
    if not staff.is_active:  # the right password: say why, rather than let them retry until throttled
        await audit.record(audit.Action.SIGN_IN_FAILED, None, staff, email=staff.email, reason="deactivated")
        await throttle.sign_in_failed(address)
        error = "Your account is deactivated. An administrator can reactivate it."
        return render(request, "auth/login.html", {**context, "error": error}, status_code=403)
    await throttle.sign_in_succeeded(normalise_email(email))
    await audit.record(audit.Action.SIGNED_IN, staff, staff)
    previous = session_record(request)
    if previous is not None and previous.staff_id is not None:
        await sessions.end(request.app.state.bus, previous)  # someone else's sign-in on this browser ends
    request.session.clear()  # a new session under a new key on sign-in: no fixation
    request.session[sessions.STAFF_KEY] = staff.id
    return RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)


async def logout(request: Request) -> Response:
    if await current_staff(request) is None:
        # Already signed out (elsewhere, by an administrator, or expired) while this page was open: there is
        # no sign-in left to protect from a forged form, so go where "Sign out" leads rather than to an error.
        return RedirectResponse("/login", status_code=303)
    await checked_form(request)
    await sessions.end(request.app.state.bus, session_record(request))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# ---------------------------------------------------------------- the Account page


def _account(request: Request, status_code: int = 200, **context: object) -> Response:
    context.setdefault("errors", {})
    context.setdefault("notice", None)
    context.setdefault("reminder_errors", {})
    context.setdefault("reminder_values", None)
    return render(request, "auth/account.html", context, status_code=status_code)


NOTICES = {
    "changed": "Your password is changed. You are still signed in here.",
    "reminders": "Your reminder settings are saved.",
}


async def account_page(request: Request) -> Response:
    await require_staff(request)
    notice = next((words for key, words in NOTICES.items() if key in request.query_params), None)
    return _account(request, notice=notice)


async def save_reminders(request: Request) -> Response:
    """The staff member's own mobile and whether task and calendar reminders are texted to it."""
    staff = await require_staff(request)
    form = await checked_form(request)
    mobile, reminders_on = str(form.get("mobile", "")), form.get("staff_reminders") == "on"
    try:
        await save_reminder_settings(request.app.state.bus, staff, mobile, reminders_on)
    except ServiceError as exc:
        typed = {"mobile": mobile, "staff_reminders": reminders_on}
        return _account(request, exc.status, reminder_errors=exc.fields, reminder_values=typed)
    return RedirectResponse("/account?reminders=1#reminders", status_code=303)


async def save_password(request: Request) -> Response:
    staff = await require_staff(request)
    form = await checked_form(request)
    throttle, address = _throttle(request), client_address(request)
    try:
        # Guessing the current password here is throttled like signing in.
        await throttle.begin_sign_in(staff.email, address)
    except Throttled as refusal:
        return throttled(_account(request, 429, errors={"current_password": refusal.message}), refusal)
    try:
        await change_password(
            request.app.state.bus,
            staff,
            str(form.get("current_password", "")),
            str(form.get("new_password", "")),
            str(form.get("confirm_password", "")),
            keep=session_record(request),
        )
    except ServiceError as exc:
        if "current_password" in exc.fields:
            await throttle.sign_in_failed(address)
        else:
            await throttle.sign_in_succeeded(staff.email)
        return _account(request, exc.status, errors=exc.fields)
    await throttle.sign_in_succeeded(staff.email)
    return RedirectResponse("/account?changed=1", status_code=303)


async def sign_out_everywhere(request: Request) -> Response:
    staff = await require_staff(request)
    await checked_form(request)
    await sessions.end_all(request.app.state.bus, staff)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", save_password, methods=["POST"]),
    Route("/account/reminders", save_reminders, methods=["POST"]),
    Route("/account/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
]
