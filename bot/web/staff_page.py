"""The admin's staff page: accounts, roles, assignments, required second factor, sign-outs,
and taking a physician's Telegram access away (docs/security.md, "The clinic and its staff")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.services import accounts, staff_access
from bot.services.accounts import AccountError, Area, Principal, StaffRole
from bot.services.staff import StaffError
from bot.web.guard import page_for, refused
from bot.web.pages import deps_of, render


def _ids(form: FormData, name: str) -> tuple[int, ...]:
    values = []
    for raw in form.getlist(name):
        text = str(raw).strip()
        if text:
            if not text.isdigit():
                raise AccountError("bad_physician")
            values.append(int(text))
    return tuple(values)


async def _page(
    request: Request,
    principal: Principal,
    *,
    status_code: int = 200,
    created: accounts.AccountCreated | None = None,
    link: str | None = None,
    error: str | None = None,
    confirm: AccessRequest | None = None,
) -> Response:
    ctx = deps_of(request).ctx
    rows = await run_in_threadpool(accounts.list_accounts, ctx)
    access = await run_in_threadpool(staff_access.list_access, ctx)
    physicians = await run_in_threadpool(accounts.physician_choices, ctx)
    required = await run_in_threadpool(accounts.roles_requiring_totp, ctx)
    return render(
        request,
        "staff.html.j2",
        principal=principal,
        status_code=status_code,
        rows=rows,
        roles=tuple(StaffRole),
        physicians=physicians,
        required=required,
        created=created,
        link=link,
        error=error,
        access=access,
        confirm=confirm,
        actions=ACCESS_ACTIONS,
    )


@page_for(Area.STAFF)
async def staff(request: Request, principal: Principal) -> Response:
    """Every account with its role, assignments, second factor and open sessions."""
    return await _page(request, principal)


@page_for(Area.STAFF)
async def add_account(request: Request, principal: Principal) -> Response:
    """Creates an account and shows its one-time set-password link, once."""
    form = await request.form()
    ctx = deps_of(request).ctx
    try:
        physician = _ids(form, "physician_id")
        created = await run_in_threadpool(
            lambda: accounts.create_account(
                ctx,
                email=str(form.get("email", "")),
                role=str(form.get("role", "")),
                language=str(form.get("language", "")) or None,
                physician_id=physician[0] if physician else None,
                assigned_physician_ids=_ids(form, "assign"),
            )
        )
    except AccountError as error:
        return await _page(request, principal, status_code=400, error=error.code)
    return await _page(request, principal, created=created)


def _account_id(request: Request) -> int:
    return int(request.path_params["account_id"])


@page_for(Area.STAFF)
async def deactivate(request: Request, principal: Principal) -> Response:
    """Deactivates an account and ends its sessions; an admin cannot lock themself out."""
    account_id = _account_id(request)
    if account_id == principal.account_id:
        return await _page(request, principal, status_code=400, error="self")
    try:
        await run_in_threadpool(accounts.deactivate, deps_of(request).ctx, account_id=account_id)
    except AccountError as error:
        return await _page(request, principal, status_code=404, error=error.code)
    return RedirectResponse("/staff", status_code=303)


@page_for(Area.STAFF)
async def revoke(request: Request, principal: Principal) -> Response:
    """Signs an account out of every browser."""
    try:
        await run_in_threadpool(
            accounts.revoke_sessions, deps_of(request).ctx, account_id=_account_id(request)
        )
    except AccountError as error:
        return await _page(request, principal, status_code=404, error=error.code)
    return RedirectResponse("/staff", status_code=303)


@page_for(Area.STAFF)
async def password_link(request: Request, principal: Principal) -> Response:
    """A new set-password link for a person who forgot theirs; shown once."""
    try:
        link = await run_in_threadpool(
            accounts.new_password_link, deps_of(request).ctx, account_id=_account_id(request)
        )
    except AccountError as error:
        return await _page(request, principal, status_code=404, error=error.code)
    return await _page(request, principal, link=link)


@page_for(Area.STAFF)
async def second_factor_policy(request: Request, principal: Principal) -> Response:
    """Requires a TOTP second factor of the roles ticked, and no longer of the others."""
    form = await request.form()
    ticked = {str(value) for value in form.getlist("require")}
    ctx = deps_of(request).ctx
    for role in StaffRole:
        await run_in_threadpool(
            accounts.require_totp, ctx, role=role.value, required=role.value in ticked
        )
    return RedirectResponse("/staff", status_code=303)


@page_for(Area.STAFF)
async def assignments(request: Request, principal: Principal) -> Response:
    """Sets the physicians a nurse works for."""
    form = await request.form()
    try:
        physician_ids = _ids(form, "assign")
        await run_in_threadpool(
            lambda: accounts.assign_physicians(
                deps_of(request).ctx, account_id=_account_id(request), physician_ids=physician_ids
            )
        )
    except AccountError as error:
        status = 404 if error.code == "no_account" else 400
        return await _page(request, principal, status_code=status, error=error.code)
    return RedirectResponse("/staff", status_code=303)


@dataclass(frozen=True)
class AccessAction:
    """One way to take a physician's access away: its path segment, its catalogue key, and the
    service that does it (audited, the same as the command line)."""

    path: str
    key: str
    change: Callable[..., staff_access.AccessChange]


ACCESS_ACTIONS: dict[str, AccessAction] = {
    action.path: action
    for action in (
        AccessAction("unlink-telegram", "unlink", staff_access.unlink_account),
        AccessAction("remove-admin", "remove_admin", staff_access.remove_admin),
        AccessAction("deactivate", "deactivate_physician", staff_access.deactivate),
    )
}


@dataclass(frozen=True)
class AccessRequest:
    """An access change the admin asked for and is asked to confirm."""

    action: AccessAction
    physician: staff_access.PhysicianAccess


@page_for(Area.STAFF)
async def physician_access(request: Request, principal: Principal) -> Response:
    """Unlinks a physician's Telegram account, removes their admin rights or deactivates them,
    after the admin has confirmed; their next command or button in Telegram is refused."""
    action = ACCESS_ACTIONS.get(str(request.path_params["action"]))
    if action is None:
        return refused(request, principal, 404)
    physician_id = int(request.path_params["physician_id"])
    ctx = deps_of(request).ctx
    form = await request.form()
    if form.get("confirm") != "yes":
        found = [
            row
            for row in await run_in_threadpool(staff_access.list_access, ctx)
            if row.physician_id == physician_id
        ]
        if not found:
            return await _page(request, principal, status_code=404, error="no_physician")
        return await _page(request, principal, confirm=AccessRequest(action, found[0]))
    try:
        await run_in_threadpool(
            lambda: action.change(ctx, physician_id=physician_id, actor=principal.actor)
        )
    except StaffError:
        return await _page(request, principal, status_code=404, error="no_physician")
    return RedirectResponse("/staff#physicians", status_code=303)


ROUTES = [
    Route("/staff", staff, methods=["GET"]),
    Route("/staff", add_account, methods=["POST"]),
    Route("/staff/{account_id:int}/deactivate", deactivate, methods=["POST"]),
    Route("/staff/{account_id:int}/sessions/revoke", revoke, methods=["POST"]),
    Route("/staff/{account_id:int}/password-link", password_link, methods=["POST"]),
    Route("/staff/second-factor", second_factor_policy, methods=["POST"]),
    Route("/staff/{account_id:int}/assignments", assignments, methods=["POST"]),
    Route("/staff/physicians/{physician_id:int}/{action:str}", physician_access, methods=["POST"]),
]
