"""`spondybot therapy …`: enter, stop, correct and list therapy episodes with their reading.

Exit codes: 0 done, 2 bad arguments or a refused episode (one line saying why, nothing
written). Dates are clinic dates: `2026-03-02` or `02.03.2026`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bot.cli.common import JsonFlag, app_context, cli_actor, echo_json, fail, plain
from bot.domain.treatment import EpisodeReading, TherapyInputError
from bot.present.course import CourseWords
from bot.present.render import default_renderer
from bot.services import therapy
from bot.services.therapy import TherapyChange, TherapyView

app = typer.Typer(
    help=(
        "Enter, stop, correct and list a patient's therapy episodes (clinical spec §7).\n\n"
        "Example: spondybot therapy add --patient MRN-0042 --drug upadacitinib "
        "--class jak_inhibitor --start 2026-03-02"
    ),
    no_args_is_help=True,
)

_LANGUAGE = "en"


def _text(key: str, **variables: Any) -> str:
    """A message from templates/messages/therapy.toml as plain terminal text."""
    return plain(default_renderer().text(f"therapy.{key}", _LANGUAGE, **variables))


def _words() -> CourseWords:
    return CourseWords(default_renderer(), _LANGUAGE)


def _refuse(error: TherapyInputError) -> None:
    fail(_text(f"reason.{error.code}", **error.params))


def _as_json(view: TherapyView) -> dict[str, Any]:
    return {
        "therapy_id": view.therapy_id,
        "patient": view.clinic_ref,
        "drug": view.drug,
        "therapy_class": view.therapy_class.value,
        "dose": view.dose,
        "start": view.start.isoformat(),
        "stop": None if view.stop is None else view.stop.isoformat(),
        "stop_reason": None if view.stop_reason is None else view.stop_reason.value,
        "entered_by": view.entered_by,
    }


def _reading_json(reading: EpisodeReading) -> dict[str, Any]:
    """The §7 reading with exact (unrounded) scores as strings, for scripts."""
    base = reading.baseline
    assessment = reading.assessment
    loss = reading.loss
    return {
        "judgement": reading.judgement.value,
        "assessment_window": [
            reading.assessment_from.isoformat(),
            reading.assessment_until.isoformat(),
        ],
        "baseline": {
            "asdas_variant": None if base.asdas_variant is None else base.asdas_variant.value,
            "asdas": None if base.asdas is None else str(base.asdas.value),
            "asdas_state": None if base.asdas_state is None else base.asdas_state.value,
            "asdas_day": None if base.asdas is None else base.asdas.day.isoformat(),
            "basdai": None if base.basdai is None else str(base.basdai.value),
            "asdas_after_start": None if base.asdas is None else base.asdas.after_start,
            "basdai_day": None if base.basdai is None else base.basdai.day.isoformat(),
            "basdai_after_start": None if base.basdai is None else base.basdai.after_start,
        },
        "assessment": None
        if assessment is None
        else {
            "day": assessment.day.isoformat(),
            "week": assessment.week,
            "asdas_before": _str(assessment.asdas_before),
            "asdas_after": _str(assessment.asdas_after),
            "asdas_state": None if assessment.state_after is None else assessment.state_after.value,
            "asdas_change": None
            if assessment.asdas_change is None
            else assessment.asdas_change.value,
            "low_activity_target": assessment.low_activity_target,
            "inactive_disease": assessment.inactive_disease,
            "by_basdai_only": assessment.by_basdai_only,
            "basdai_before": _str(assessment.basdai_before),
            "basdai_after": _str(assessment.basdai_after),
            "crp_before_mg_l": _str(assessment.crp_before),
            "crp_after_mg_l": _str(assessment.crp_after),
            "basdai50": assessment.basdai50,
            "asas_eular_basdai_response": assessment.asas_eular_basdai_response,
        },
        "loss_of_response": None
        if loss is None
        else {"day": loss.day.isoformat(), "asdas": str(loss.asdas), "best": str(loss.best)},
    }


def _str(value: object) -> str | None:
    return None if value is None else str(value)


@app.command("add")
def add(
    patient: Annotated[str, typer.Option("--patient", help="The patient's clinic reference.")],
    drug: Annotated[str, typer.Option("--drug", help="The drug, e.g. adalimumab.")],
    therapy_class: Annotated[
        str,
        typer.Option(
            "--class",
            help="nsaid, csdmard, tnf_inhibitor, il17_inhibitor, jak_inhibitor, "
            "glucocorticoid or other.",
        ),
    ],
    start: Annotated[str, typer.Option("--start", help="Start date: 2026-03-02 or 02.03.2026.")],
    dose: Annotated[str | None, typer.Option("--dose", help="Dose, e.g. '15 mg daily'.")] = None,
    stop: Annotated[
        str | None, typer.Option("--stop", help="Stop date, for a past episode.")
    ] = None,
    stop_reason: Annotated[
        str | None,
        typer.Option(
            "--stop-reason",
            help="inefficacy, adverse_event, remission_or_taper, patient_choice or other.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and show the episode; write nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Store a therapy episode; a second open episode makes a combination.

    Example: spondybot therapy add --patient MRN-0042 --drug upadacitinib --class jak_inhibitor
    --dose "15 mg daily" --start 2026-03-02
    """
    with app_context() as ctx:
        try:
            view = therapy.add_therapy(
                ctx,
                clinic_ref=patient,
                drug=drug,
                therapy_class=therapy_class,
                start=start,
                dose=dose,
                stop=stop,
                stop_reason=stop_reason,
                actor=cli_actor(),
                dry_run=dry_run,
            )
        except TherapyInputError as error:
            _refuse(error)
    if as_json:
        echo_json({"dry_run": dry_run, "therapy": _as_json(view)})
        return
    episode = plain(_words().episode(view))
    if dry_run:
        typer.echo(_text("cli.preview", ref=view.clinic_ref, episode=episode))
    else:
        typer.echo(
            _text("cli.added", therapy_id=view.therapy_id, ref=view.clinic_ref, episode=episode)
        )


def _report_change(change: TherapyChange, key: str, as_json: bool) -> None:
    if as_json:
        echo_json({"before": _as_json(change.before), "after": _as_json(change.after)})
        return
    words = _words()
    typer.echo(
        _text(
            key,
            therapy_id=change.after.therapy_id,
            episode=plain(words.episode(change.after)),
            before=plain(words.episode(change.before)),
            after=plain(words.episode(change.after)),
        )
    )


@app.command("stop")
def stop(
    therapy_id: Annotated[int, typer.Argument(help="The episode's id (see `therapy list`).")],
    on: Annotated[str, typer.Option("--on", help="Stop date: 2026-03-02 or 02.03.2026.")],
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="inefficacy, adverse_event, remission_or_taper, patient_choice or other.",
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Stop an open episode on a date, for a reason.

    Example: spondybot therapy stop 3 --on 2026-05-04 --reason adverse_event
    """
    with app_context() as ctx:
        try:
            change = therapy.stop_therapy(
                ctx, therapy_id=therapy_id, stop=on, stop_reason=reason, actor=cli_actor()
            )
        except TherapyInputError as error:
            _refuse(error)
    _report_change(change, "cli.stopped", as_json)


@app.command("fix")
def fix(
    therapy_id: Annotated[int, typer.Argument(help="The episode's id (see `therapy list`).")],
    drug: Annotated[str | None, typer.Option("--drug", help="The correct drug.")] = None,
    therapy_class: Annotated[str | None, typer.Option("--class", help="The correct class.")] = None,
    dose: Annotated[
        str | None, typer.Option("--dose", help="The correct dose ('' removes it).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="The correct start date.")] = None,
    stop: Annotated[str | None, typer.Option("--stop", help="The correct stop date.")] = None,
    stop_reason: Annotated[
        str | None, typer.Option("--stop-reason", help="The correct stop reason.")
    ] = None,
    reopen: Annotated[
        bool, typer.Option("--reopen", help="Remove a stop entered by mistake.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why, for the audit trail.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Correct an episode; the old values stay in the audit trail.

    Example: spondybot therapy fix 3 --start 2026-03-09 --reason "first dose a week later"
    """
    with app_context() as ctx:
        try:
            change = therapy.fix_therapy(
                ctx,
                therapy_id=therapy_id,
                actor=cli_actor(),
                drug=drug,
                therapy_class=therapy_class,
                dose=dose,
                start=start,
                stop=stop,
                stop_reason=stop_reason,
                reopen=reopen,
                reason=reason,
            )
        except TherapyInputError as error:
            _refuse(error)
    _report_change(change, "cli.corrected", as_json)


@app.command("list")
def list_therapies(
    patient: Annotated[str, typer.Option("--patient", help="The patient's clinic reference.")],
    as_json: JsonFlag = False,
) -> None:
    """List a patient's episodes by start date, each with its §7 reading: baseline, response
    at weeks 12-24, primary non-response, loss of response.

    Example: spondybot therapy list --patient MRN-0042
    """
    with app_context() as ctx:
        try:
            course = therapy.course(ctx, clinic_ref=patient)
        except TherapyInputError as error:
            _refuse(error)
    if as_json:
        echo_json(
            {
                "patient": course.clinic_ref,
                "today": course.today.isoformat(),
                "therapies": [
                    {**_as_json(item.therapy), "reading": _reading_json(item.reading)}
                    for item in course.episodes
                ],
            }
        )
        return
    if not course.episodes:
        typer.echo(_text("cli.no_therapies", ref=course.clinic_ref))
        return
    for line in _words().course(course):
        typer.echo(plain(line))


@app.command("checkin")
def checkin(
    patient: Annotated[str, typer.Option("--patient", help="The patient's clinic reference.")],
    setting: Annotated[
        str,
        typer.Argument(
            help="on, off, or default (on while a TNF, IL-17 or JAK inhibitor is taken)."
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Turn a patient's weekly safety check-in on or off (clinical spec §8).

    Example: spondybot therapy checkin --patient MRN-0042 off
    """
    choices = {"on": True, "off": False, "default": None}
    if setting.lower() not in choices:
        fail(_text("reason.checkin_setting", value=setting[:20]))
    chosen = choices[setting.lower()]
    with app_context() as ctx:
        try:
            previous = therapy.set_safety_checkin(
                ctx, clinic_ref=patient, setting=chosen, actor=cli_actor()
            )
        except TherapyInputError as error:
            _refuse(error)
    if as_json:
        echo_json({"patient": patient, "safety_checkin": chosen, "previous": previous})
        return
    typer.echo(_text("cli.checkin_set", ref=patient, setting=setting.lower()))
