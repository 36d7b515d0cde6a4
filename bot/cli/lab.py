"""`spondybot lab …`: enter, import, correct, delete and list CRP/ESR values.

Exit codes: 0 done (a value already stored counts as done), 1 a lab file was imported but some
of its lines were refused, 2 bad arguments or a refused value (nothing written).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from bot.cli.common import JsonFlag, app_context, cli_actor, echo_json, fail, plain
from bot.domain.labs import LabInputError, LabParam, display_value
from bot.present.render import default_renderer
from bot.present.screens import lab_refusal
from bot.services import labs
from bot.services.labs import LabView

app = typer.Typer(
    help=(
        "Enter, import, correct and list lab values (CRP, ESR).\n\n"
        "Example: spondybot lab add --patient MRN-0042 --crp 7.59 --drawn 2026-03-02"
    ),
    no_args_is_help=True,
)

PARTIAL_IMPORT = 1


def _text(key: str, **variables: Any) -> str:
    """A message from templates/messages/labs.toml as plain terminal text."""
    rendered = default_renderer().text(f"labs.{key}", "en", **variables)
    return plain(rendered)


def _reason(code: str, params: Mapping[str, LabParam]) -> str:
    return plain(lab_refusal(default_renderer(), "en", code, params))


def reason_text(error: LabInputError) -> str:
    """Why a value or a file was refused, in words."""
    return _reason(error.code, error.params)


def _refuse(error: LabInputError) -> None:
    fail(reason_text(error))


def _drawn(lab: LabView, timezone: str) -> str:
    return lab.drawn_at.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _value(lab: LabView) -> str:
    shown = display_value(lab.value)
    return f"<{shown}" if lab.below_detection_limit else shown


def _describe(lab: LabView, timezone: str) -> dict[str, str]:
    return {
        "analyte": lab.analyte.upper(),
        "value": _value(lab),
        "unit": lab.unit,
        "ref": lab.clinic_ref,
        "drawn": _drawn(lab, timezone),
        "lab_id": str(lab.lab_id),
    }


def _floor_note(lab: LabView) -> str | None:
    if not lab.floored:
        return None
    return _text("floor_below_limit" if lab.below_detection_limit else "floor_applied")


def _as_json(lab: LabView) -> dict[str, Any]:
    return {
        "lab_id": lab.lab_id,
        "patient": lab.clinic_ref,
        "analyte": lab.analyte,
        "value": str(lab.value),
        "unit": lab.unit,
        "value_normalised": str(lab.value_normalised),
        "below_detection_limit": lab.below_detection_limit,
        "floored": lab.floored,
        "drawn_at": lab.drawn_at.isoformat(),
        "source": lab.source,
        "entered_by": lab.entered_by,
        "deleted": lab.deleted,
        "used_by_administrations": list(lab.used_by),
    }


@app.command("add")
def add(
    patient: Annotated[str, typer.Option("--patient", help="The patient's clinic reference.")],
    drawn: Annotated[
        str,
        typer.Option(
            "--drawn",
            help="When the sample was drawn: 2026-03-02 (noon clinic time) or 2026-03-02 08:15.",
        ),
    ],
    crp: Annotated[
        str | None, typer.Option("--crp", help="CRP value, e.g. 7.59, 7,59 or '<0.5'.")
    ] = None,
    unit: Annotated[str, typer.Option("--unit", help="Unit of the CRP: mg/L or mg/dL.")] = "mg/L",
    esr: Annotated[str | None, typer.Option("--esr", help="ESR value in mm/h.")] = None,
    below_detection_limit: Annotated[
        bool,
        typer.Option(
            "--below-detection-limit",
            help="The CRP was reported as below this detection limit (same as '<value').",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Store a CRP and/or ESR of one sample; the ASDAS of questionnaires within the matching
    window is computed at once.

    Example: spondybot lab add --patient MRN-0042 --crp 7.59 --unit mg/L --esr 5 --drawn 2026-03-02
    """
    with app_context() as ctx:
        try:
            outcomes = labs.add_lab_values(
                ctx,
                clinic_ref=patient,
                drawn=drawn,
                entered_by=cli_actor(),
                crp=crp,
                crp_unit=unit,
                crp_below_detection_limit=below_detection_limit,
                esr=esr,
            )
        except LabInputError as error:
            _refuse(error)
        timezone = ctx.settings.clinic_timezone
    recomputed = sorted({admin for outcome in outcomes for admin in outcome.recomputed})
    if as_json:
        echo_json(
            {
                "labs": [
                    {"status": outcome.status, **_as_json(outcome.lab)} for outcome in outcomes
                ],
                "recomputed_administrations": recomputed,
            }
        )
        return
    for outcome in outcomes:
        key = "stored" if outcome.status == labs.STORED else "duplicate"
        typer.echo(_text(f"cli.{key}", **_describe(outcome.lab, timezone)))
        note = _floor_note(outcome.lab)
        if note:
            typer.echo("  " + _text("cli.floor", note=note))
    if recomputed:
        typer.echo(_text("cli.recomputed", count=len(recomputed)))


@app.command("import")
def import_file(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="The lab's CSV export (see README)."
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and report; write nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import a lab's CSV export: good lines are stored, every bad line is reported with its
    line number and reason, and lines imported before are counted as duplicates.

    Exit code 1 when some lines were refused (the others were stored).

    Example: spondybot lab import crp-2026-03.csv --dry-run
    """
    with app_context() as ctx:
        try:
            report = labs.import_lab_file(ctx, data=path, entered_by=cli_actor(), dry_run=dry_run)
        except LabInputError as error:
            _refuse(error)
    if as_json:
        echo_json(
            {
                "dry_run": report.dry_run,
                "stored": report.stored,
                "duplicate": report.duplicate,
                "refused": report.refused,
                "recomputed_administrations": report.recomputed,
                "rows": [
                    {
                        "line": row.line,
                        "outcome": row.outcome,
                        "patient": row.clinic_ref,
                        "analyte": row.analyte,
                        "lab_id": row.lab_id,
                        "reason": row.reason,
                        "message": None if row.reason is None else _reason(row.reason, row.params),
                    }
                    for row in report.rows
                ],
            }
        )
    else:
        for row in report.rows:
            if row.outcome == labs.REFUSED:
                assert row.reason is not None
                reason = _reason(row.reason, row.params)
                typer.echo(_text("cli.line_refused", line=row.line, reason=reason))
            elif row.outcome == labs.DUPLICATE:
                if row.reason is None:
                    typer.echo(_text("cli.line_duplicate", line=row.line, lab_id=row.lab_id))
                else:
                    reason = _text(f"reason.{row.reason}")
                    typer.echo(
                        _text(
                            "cli.line_duplicate_deleted",
                            line=row.line,
                            lab_id=row.lab_id,
                            reason=reason,
                        )
                    )
        counts = {
            "stored": report.stored,
            "duplicate": report.duplicate,
            "refused": report.refused,
        }
        typer.echo(_text("cli.summary_dry_run" if dry_run else "cli.summary", **counts))
        if report.recomputed and not dry_run:
            typer.echo(_text("cli.recomputed", count=report.recomputed))
    if report.refused:
        raise typer.Exit(PARTIAL_IMPORT)


def _short(lab: LabView, timezone: str) -> str:
    return f"{lab.analyte.upper()} {_value(lab)} {lab.unit}, {_drawn(lab, timezone)}"


def _require_reason(reason: str | None, example: str) -> None:
    """Corrections and deletions say why: the audit trail is read long after the fact."""
    if reason is None or not reason.strip():
        fail(_text("cli.reason_required", example=example))


@app.command("fix")
def fix(
    lab_id: Annotated[int, typer.Argument(help="The lab value's id (see `lab list`).")],
    value: Annotated[
        str | None, typer.Option("--value", help="The correct value, e.g. 7.59 or '<0.5'.")
    ] = None,
    unit: Annotated[
        str | None, typer.Option("--unit", help="The correct unit (mg/L or mg/dL for CRP).")
    ] = None,
    drawn: Annotated[
        str | None, typer.Option("--drawn", help="The correct date (and time) of the sample.")
    ] = None,
    below_detection_limit: Annotated[
        bool | None,
        typer.Option(
            "--below-detection-limit/--measured",
            help="Whether the CRP was reported only as below the detection limit.",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the audit trail (required).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Correct a stored lab value; the old value stays in the audit trail and every ASDAS it
    fed, or now feeds, is recomputed.

    Example: spondybot lab fix 12 --unit mg/dL --reason "lab reported mg/dL"
    """
    _require_reason(reason, 'e.g. --reason "lab reported mg/dL"')
    with app_context() as ctx:
        try:
            outcome = labs.fix_lab_value(
                ctx,
                lab_id=lab_id,
                actor=cli_actor(),
                value=value,
                unit=unit,
                drawn=drawn,
                below_detection_limit=below_detection_limit,
                reason=reason,
            )
        except LabInputError as error:
            _refuse(error)
        timezone = ctx.settings.clinic_timezone
    if as_json:
        echo_json(
            {
                "before": _as_json(outcome.before),
                "after": _as_json(outcome.after),
                "recomputed_administrations": list(outcome.recomputed),
            }
        )
        return
    typer.echo(
        _text(
            "cli.corrected",
            lab_id=lab_id,
            before=_short(outcome.before, timezone),
            after=_short(outcome.after, timezone),
        )
    )
    note = _floor_note(outcome.after)
    if note:
        typer.echo("  " + _text("cli.floor", note=note))
    if outcome.recomputed:
        typer.echo(_text("cli.recomputed", count=len(outcome.recomputed)))


@app.command("delete")
def delete(
    lab_id: Annotated[int, typer.Argument(help="The lab value's id (see `lab list`).")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the audit trail (required).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Withdraw a lab value from every score; it stays in the audit trail and every ASDAS it
    fed is recomputed (with another value in the window, or none).

    Example: spondybot lab delete 12 --reason "wrong patient"
    """
    _require_reason(reason, 'e.g. --reason "wrong patient"')
    with app_context() as ctx:
        try:
            outcome = labs.delete_lab_value(ctx, lab_id=lab_id, actor=cli_actor(), reason=reason)
        except LabInputError as error:
            _refuse(error)
        timezone = ctx.settings.clinic_timezone
    if as_json:
        echo_json(
            {
                "deleted": _as_json(outcome.before),
                "recomputed_administrations": list(outcome.recomputed),
            }
        )
        return
    typer.echo(_text("cli.deleted", lab_id=lab_id, before=_short(outcome.before, timezone)))
    if outcome.recomputed:
        typer.echo(_text("cli.recomputed", count=len(outcome.recomputed)))


PAGE_SIZE = 20


@app.command("list")
def list_labs(
    patient: Annotated[
        str | None,
        typer.Option(
            "--patient", help="The patient's clinic reference; without it, the whole clinic."
        ),
    ] = None,
    page: Annotated[
        int, typer.Option("--page", min=1, help="Without --patient: which page of 20.")
    ] = 1,
    include_deleted: Annotated[bool, typer.Option("--all", help="Include deleted values.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a patient's lab values, oldest first, with the questionnaires each one feeds;
    without --patient, the latest values across the clinic, newest first, 20 a page.

    Example: spondybot lab list --patient MRN-0042
    """
    more = False
    with app_context() as ctx:
        if patient is None:
            latest = labs.latest_lab_values(
                ctx, page=page, page_size=PAGE_SIZE, include_deleted=include_deleted
            )
            rows, more = latest.labs, latest.more
        else:
            try:
                rows = labs.list_lab_values(
                    ctx, clinic_ref=patient, include_deleted=include_deleted
                )
            except LabInputError as error:
                _refuse(error)
        timezone = ctx.settings.clinic_timezone
    if as_json:
        if patient is None:
            echo_json({"page": page, "more": more, "labs": [_as_json(row) for row in rows]})
        else:
            echo_json({"patient": patient, "labs": [_as_json(row) for row in rows]})
        return
    if not rows:
        typer.echo(_text("cli.no_labs", ref=patient) if patient else _text("cli.no_labs_clinic"))
        return
    typer.echo(
        f"{'id':>5}  {'patient':<12} {'test':<4} {'value':>8} {'unit':<6} {'drawn':<16}  "
        f"{'source':<6} {'used by':<10} note"
    )
    for row in rows:
        notes = []
        if row.deleted:
            notes.append("deleted")
        floor = _floor_note(row)
        if floor:
            notes.append(floor)
        used = ",".join(str(admin) for admin in row.used_by) or "-"
        typer.echo(
            f"{row.lab_id:>5}  {row.clinic_ref:<12} {row.analyte.upper():<4} {_value(row):>8} "
            f"{row.unit:<6} {_drawn(row, timezone):<16}  {row.source:<6} {used:<10} "
            f"{'; '.join(notes)}"
        )
    if more:
        typer.echo(_text("cli.more_pages", page=page + 1))
