"""`spondybot physician …` and `spondybot patient …`: records and one-time enrollment codes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import JsonFlag, app_context, cli_actor, echo_json, fail
from bot.domain.treatment import TherapyInputError
from bot.present.render import default_renderer
from bot.services import staff, staff_access, therapy

physician_app = typer.Typer(
    help="Manage physicians.\n\nExample: spondybot physician add --name 'Dr. Lee' --language zh",
    no_args_is_help=True,
)
patient_app = typer.Typer(
    help="Manage patients.\n\nExample: spondybot patient add --physician 1 --ref MRN-0042",
    no_args_is_help=True,
)


def _report_code(
    code: staff.IssuedCode,
    timezone: str,
    *,
    as_json: bool,
    ids: dict[str, object],
    headline: str | None = None,
) -> None:
    """The code for staff to hand over: as JSON with `ids`, or as lines with its expiry in
    clinic time, to the minute, under an optional headline."""
    if as_json:
        echo_json({**ids, "code": code.code, "link": code.link, "expires_at": code.expires_at})
        return
    if headline is not None:
        typer.echo(headline)
    expires = datetime.fromisoformat(code.expires_at).astimezone(ZoneInfo(timezone))
    typer.echo(f"one-time code: {code.code}")
    typer.echo(f"link:          {code.link}")
    typer.echo(f"valid until:   {expires:%Y-%m-%d %H:%M} ({timezone})")


@physician_app.command("add")
def physician_add(
    name: Annotated[str, typer.Option("--name", help="Name shown to staff.")],
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="en, zh or de.")] = None,
    email: Annotated[str | None, typer.Option(help="Where the weekly digest is e-mailed.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Clinic admin: sees every patient.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a physician and print the one-time code that links their Telegram account.

    Example: spondybot physician add --name 'Dr. Lee' --language zh --timezone Asia/Shanghai
    """
    with app_context() as ctx:
        clinic_timezone = ctx.settings.clinic_timezone
        try:
            created = staff.add_physician(
                ctx,
                display_name=name,
                timezone=timezone,
                language=language,
                email=email,
                admin=admin,
            )
        except staff.StaffError as error:
            fail(str(error))
    _report_code(
        created.code,
        clinic_timezone,
        as_json=as_json,
        ids={"physician_id": created.physician_id},
        headline=f"physician {created.physician_id} added",
    )


@physician_app.command("code")
def physician_code(
    physician_id: Annotated[int, typer.Argument(help="The physician's id.")],
    as_json: JsonFlag = False,
) -> None:
    """Issue a fresh one-time code for a physician; the previous one stops working.

    Example: spondybot physician code 3
    """
    with app_context() as ctx:
        clinic_timezone = ctx.settings.clinic_timezone
        try:
            code = staff.new_physician_code(ctx, physician_id=physician_id)
        except staff.StaffError as error:
            fail(str(error))
    _report_code(code, clinic_timezone, as_json=as_json, ids={"physician_id": physician_id})


def _report_change(
    change: staff_access.AccessChange, done: str, nothing: str, as_json: bool
) -> None:
    if as_json:
        echo_json(change)
    else:
        typer.echo(done if change.changed else nothing)


PhysicianId = Annotated[int, typer.Argument(help="The physician's id (see `physician add`).")]


@physician_app.command("unlink")
def physician_unlink(physician_id: PhysicianId, as_json: JsonFlag = False) -> None:
    """Unlink a physician's Telegram account (lost phone, shared account): its next command or
    button is refused. `physician code` links a new account. Audited.

    Example: spondybot physician unlink 3
    """
    with app_context() as ctx:
        try:
            change = staff_access.unlink_account(ctx, physician_id=physician_id, actor=cli_actor())
        except staff.StaffError as error:
            fail(str(error))
    _report_change(
        change,
        f"physician {physician_id}: Telegram account unlinked",
        f"physician {physician_id}: no Telegram account was linked",
        as_json,
    )


@physician_app.command("deactivate")
def physician_deactivate(physician_id: PhysicianId, as_json: JsonFlag = False) -> None:
    """Deactivate a physician who left: no access, no digest, no new code. Their patients keep
    being followed and are listed as needing a new physician. Audited.

    Example: spondybot physician deactivate 3
    """
    with app_context() as ctx:
        try:
            change = staff_access.deactivate(ctx, physician_id=physician_id, actor=cli_actor())
        except staff.StaffError as error:
            fail(str(error))
    _report_change(
        change,
        f"physician {physician_id} deactivated; their patients are listed as needing a new "
        "physician (`patient list`)",
        f"physician {physician_id} was already deactivated",
        as_json,
    )


@physician_app.command("remove-admin")
def physician_remove_admin(physician_id: PhysicianId, as_json: JsonFlag = False) -> None:
    """Remove clinic-admin rights: the physician sees only their own patients again. Audited.

    Example: spondybot physician remove-admin 3
    """
    with app_context() as ctx:
        try:
            change = staff_access.remove_admin(ctx, physician_id=physician_id, actor=cli_actor())
        except staff.StaffError as error:
            fail(str(error))
    _report_change(
        change,
        f"physician {physician_id}: admin rights removed",
        f"physician {physician_id} was not an admin",
        as_json,
    )


@patient_app.command("add")
def patient_add(
    physician: Annotated[int, typer.Option("--physician", help="Id of the treating physician.")],
    ref: Annotated[str, typer.Option("--ref", help="The clinic's reference for the patient.")],
    name: Annotated[str | None, typer.Option(help="Display name (identifying).")] = None,
    language: Annotated[str | None, typer.Option(help="en, zh or de.")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a patient and print their one-time enrollment code and Telegram link.

    Example: spondybot patient add --physician 1 --ref MRN-0042 --language zh
    """
    with app_context() as ctx:
        clinic_timezone = ctx.settings.clinic_timezone
        try:
            created = staff.add_patient(
                ctx,
                physician_id=physician,
                clinic_ref=ref,
                display_name=name,
                language=language,
                timezone=timezone,
            )
        except staff.StaffError as error:
            fail(str(error))
    _report_code(
        created.code,
        clinic_timezone,
        as_json=as_json,
        ids={
            "patient_id": created.patient_id,
            "physician_id": created.physician_id,
            "clinic_ref": created.clinic_ref,
        },
        headline=f"patient {created.clinic_ref} added (id {created.patient_id})",
    )


@patient_app.command("list")
def patient_list(
    physician: Annotated[
        int | None, typer.Option("--physician", help="Only this physician's.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List patients with their status and whether Telegram is linked.

    Example: spondybot patient list --physician 1
    """
    with app_context() as ctx:
        rows = staff.list_patients(ctx, physician_id=physician)
    if as_json:
        echo_json({"patients": [row.__dict__ for row in rows]})
        return
    if not rows:
        typer.echo("no patients yet")
        return
    typer.echo(f"{'id':>5}  {'reference':<16} {'physician':>9}  {'status':<11} {'linked':<6} tz")
    for row in rows:
        needs = "  needs a new physician (theirs was deactivated)" if row.needs_physician else ""
        typer.echo(
            f"{row.patient_id:>5}  {row.clinic_ref:<16} {row.physician_id:>9}  "
            f"{row.status:<11} {'yes' if row.linked else 'no':<6} {row.timezone}{needs}"
        )


@patient_app.command("code")
def patient_code(
    clinic_ref: Annotated[str, typer.Argument(help="The patient's clinic reference.")],
    as_json: JsonFlag = False,
) -> None:
    """Issue a fresh one-time code for a patient; the previous one stops working.

    Example: spondybot patient code MRN-0042
    """
    with app_context() as ctx:
        clinic_timezone = ctx.settings.clinic_timezone
        try:
            code = staff.new_patient_code(ctx, clinic_ref=clinic_ref)
        except staff.StaffError as error:
            fail(str(error))
    _report_code(code, clinic_timezone, as_json=as_json, ids={"clinic_ref": clinic_ref})


@patient_app.command("report")
def patient_report(
    clinic_ref: Annotated[str, typer.Argument(help="The patient's clinic reference.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    as_json: JsonFlag = False,
) -> None:
    """Write the one-page course report for the clinic visit (PDF): the course chart with the
    therapies as bars, each episode's baseline and response, and the latest scores with their
    lab values and dates, in the physician's language.

    Example: spondybot patient report MRN-0042 --out course.pdf
    """
    with app_context() as ctx:
        try:
            report = therapy.course_report(ctx, clinic_ref=clinic_ref)
        except TherapyInputError as error:
            fail(default_renderer().text(f"therapy.reason.{error.code}", "en", **error.params))
    from bot.present.course_report import course_report_pdf  # matplotlib only for this command

    pdf = course_report_pdf(default_renderer(), report)
    try:
        out.write_bytes(pdf)
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror}")
    if as_json:
        echo_json({"patient": report.clinic_ref, "out": str(out), "bytes": len(pdf)})
        return
    typer.echo(f"course report for {report.clinic_ref} written to {out}")
