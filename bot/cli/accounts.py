"""`spondybot staff …`: the clinic web app's accounts (add, list, deactivate, second factor)."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import JsonFlag, app_context, echo_json, fail

staff_app = typer.Typer(
    help=(
        "Manage clinic web app accounts.\n\n"
        "Example: spondybot staff add --email lee@clinic.example --role admin"
    ),
    no_args_is_help=True,
)


@staff_app.command("add")
def staff_add(
    email: Annotated[str, typer.Option("--email", help="The person's e-mail (their sign-in).")],
    role: Annotated[str, typer.Option("--role", help="admin, physician, nurse or researcher.")],
    language: Annotated[str | None, typer.Option(help="en, zh or de.")] = None,
    physician: Annotated[
        int | None, typer.Option("--physician", help="Physician record of a physician account.")
    ] = None,
    assign: Annotated[
        list[int] | None,
        typer.Option("--assign", help="Physician a nurse works for (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an account and print its one-time set-password link.

    Example: spondybot staff add --email nurse@clinic.example --role nurse --assign 1
    """
    from bot.services import accounts

    with app_context() as ctx:
        try:
            created = accounts.create_account(
                ctx,
                email=email,
                role=role,
                language=language,
                physician_id=physician,
                assigned_physician_ids=tuple(assign or ()),
            )
        except accounts.AccountError as error:
            fail(str(error))
    if as_json:
        echo_json(created)
        return
    typer.echo(f"account {created.account_id}: {created.email} ({created.role.value})")
    typer.echo(f"set-password link (one time): {created.password_link}")


@staff_app.command("list")
def staff_list(as_json: JsonFlag = False) -> None:
    """List every account with its role and state.

    Example: spondybot staff list --json
    """
    from bot.services import accounts

    with app_context() as ctx:
        rows = accounts.list_accounts(ctx)
    for row in rows:
        if as_json:
            echo_json(row)
            continue
        state = "active" if row.active else "deactivated"
        totp = " totp" if row.has_totp else ""
        typer.echo(f"{row.account_id:>4}  {row.email:<40} {row.role.value:<11} {state}{totp}")


@staff_app.command("deactivate")
def staff_deactivate(
    account_id: Annotated[int, typer.Argument(help="Account id (see `staff list`).")],
) -> None:
    """Deactivate an account (never deleted) and end its sessions.

    Example: spondybot staff deactivate 3
    """
    from bot.services import accounts

    with app_context() as ctx:
        try:
            accounts.deactivate(ctx, account_id=account_id)
        except accounts.AccountError as error:
            fail(str(error))
    typer.echo(f"account {account_id} deactivated")


@staff_app.command("password-link")
def staff_password_link(
    account_id: Annotated[int, typer.Argument(help="Account id (see `staff list`).")],
) -> None:
    """Print a new one-time set-password link; earlier links stop working.

    Example: spondybot staff password-link 3
    """
    from bot.services import accounts

    with app_context() as ctx:
        try:
            link = accounts.new_password_link(ctx, account_id=account_id)
        except accounts.AccountError as error:
            fail(str(error))
    typer.echo(f"set-password link (one time): {link}")


@staff_app.command("require-2fa")
def staff_require_2fa(
    role: Annotated[str, typer.Argument(help="admin, physician, nurse or researcher.")],
    off: Annotated[bool, typer.Option("--off", help="Stop requiring it.")] = False,
) -> None:
    """Require an authenticator app (TOTP) at sign-in for every account of a role.

    Example: spondybot staff require-2fa admin
    """
    from bot.services import accounts

    with app_context() as ctx:
        try:
            accounts.require_totp(ctx, role=role, required=not off)
        except accounts.AccountError as error:
            fail(str(error))
    typer.echo(f"second factor {'not ' if off else ''}required for {role}")
