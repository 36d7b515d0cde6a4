"""Words for the treatment course (clinical spec §7): each episode and its reading, per language.

Shared by the staff command line, the physician's chat and the course report, so a reading
is worded the same everywhere. Scores are shown to one decimal next to their state (§3).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from markupsafe import Markup

from bot.domain import scoring
from bot.domain.labs import display_value
from bot.domain.treatment import Assessment, EpisodeReading, Judgement, TherapyEpisode
from bot.present.render import Renderer
from bot.services.therapy import Course, TherapyView


def rendered(text: str) -> Markup:
    """A message our autoescaping templates rendered, marked as such, so nesting it in another
    message does not escape it twice (“patient's” would show as “patient&#39;s”)."""
    return Markup(text)  # noqa: S704  (text is the output of an autoescaped template)


class CourseWords:
    """The course's texts in one language."""

    def __init__(self, renderer: Renderer, language: str) -> None:
        self.renderer = renderer
        self.language = language

    def _t(self, key: str, **variables: object) -> str:
        return rendered(self.renderer.text(f"therapy.{key}", self.language, **variables))

    def _day(self, day: date | None) -> str:
        return "" if day is None else day.isoformat()

    def state(self, state: scoring.AsdasState) -> str:
        return rendered(self.renderer.asdas_state_name(state, self.language))

    def episode(self, therapy: TherapyView | TherapyEpisode) -> str:
        """One line: drug, dose, class, start → stop (reason) or ongoing."""
        return self._t(
            "episode.summary",
            drug=therapy.drug,
            dose=therapy.dose,
            therapy_class=self._t(f"class.{therapy.therapy_class.value}"),
            start=self._day(therapy.start),
            stop=self._day(therapy.stop),
            stop_reason=(
                "" if therapy.stop_reason is None else self._t(f"stop_reason.{therapy.stop_reason}")
            ),
        )

    def reading(self, reading: EpisodeReading) -> list[str]:
        """The §7 reading of an episode, one statement a line."""
        base = reading.baseline
        if reading.judgement is Judgement.NO_BASELINE:
            return [self._t("reading.no_baseline")]
        anchor = base.asdas or base.basdai
        assert anchor is not None
        lines = [
            self._t(
                "reading.baseline",
                variant="" if base.asdas_variant is None else base.asdas_variant.value,
                asdas="" if base.asdas is None else scoring.display_round(base.asdas.value),
                asdas_state="" if base.asdas_state is None else self.state(base.asdas_state),
                basdai="" if base.basdai is None else scoring.display_round(base.basdai.value),
                day=self._day(anchor.day),
                after_start=anchor.after_start,
            )
        ]
        first, last = self._day(reading.assessment_from), self._day(reading.assessment_until)
        if reading.assessment is not None:
            lines.extend(self.assessment(reading.assessment, reading.judgement))
        elif reading.judgement is Judgement.NOT_YET_DUE:
            lines.append(self._t("reading.not_yet_due", first=first, last=last))
        elif reading.judgement is Judgement.DUE:
            lines.append(self._t("reading.due", last=last))
        elif reading.judgement is Judgement.STOPPED_BEFORE_ASSESSMENT:
            lines.append(self._t("reading.stopped_before"))
        else:
            lines.append(self._t("reading.not_assessed", first=first, last=last))
        if reading.loss is not None:
            variant = base.asdas_variant
            lines.append(
                self._t(
                    "reading.loss",
                    day=self._day(reading.loss.day),
                    variant="" if variant is None else variant.value,
                    asdas=scoring.display_round(reading.loss.asdas),
                    best=scoring.display_round(reading.loss.best),
                    very_high=reading.loss.very_high,
                )
            )
        return lines

    def assessment(self, assessment: Assessment, judgement: Judgement) -> list[str]:
        """The week-N comparison, its judgement, and BASDAI50 beside the ASAS/EULAR rule."""
        head = self._t(
            "reading.assessed",
            week=assessment.week,
            day=self._day(assessment.day),
            variant="" if assessment.asdas_variant is None else assessment.asdas_variant.value,
            before=_shown(assessment.asdas_before),
            after=_shown(assessment.asdas_after),
            state="" if assessment.state_after is None else self.state(assessment.state_after),
            basdai_before=_shown(assessment.basdai_before),
            basdai_after=_shown(assessment.basdai_after),
            crp_before=_lab(assessment.crp_before),
            crp_after=_lab(assessment.crp_after),
        )
        verdicts: list[str] = []
        if judgement is Judgement.RESPONSE:
            if assessment.major_improvement:
                verdicts.append(self._t("reading.major"))
            elif assessment.important_improvement:
                verdicts.append(self._t("reading.important"))
            else:
                verdicts.append(self._t("reading.response"))
        elif judgement is Judgement.NO_RESPONSE:
            verdicts.append(self._t("reading.no_response", week=assessment.week))
        elif judgement is Judgement.TARGET_WITHOUT_RESPONSE:
            verdicts.append(self._t("reading.target_without_response"))
        if assessment.inactive_disease:
            verdicts.append(self._t("reading.inactive"))
        elif assessment.low_activity_target and judgement is not Judgement.TARGET_WITHOUT_RESPONSE:
            verdicts.append(self._t("reading.target"))
        lines = [self._t("reading.verdicts", head=head, verdicts=verdicts) if verdicts else head]
        if assessment.basdai50 is not None and assessment.asas_eular_basdai_response is not None:
            lines.append(
                self._t(
                    "reading.basdai",
                    before=_shown(assessment.basdai_before),
                    after=_shown(assessment.basdai_after),
                    basdai50=self._t("reading.met" if assessment.basdai50 else "reading.not_met"),
                    asas_eular=self._t(
                        "reading.met"
                        if assessment.asas_eular_basdai_response
                        else "reading.not_met"
                    ),
                )
            )
        return lines

    def _met(self, met: bool) -> str:
        return self._t("reading.met" if met else "reading.not_met")

    def course(self, course: Course) -> list[str]:
        """Every episode followed by its indented reading."""
        lines: list[str] = []
        for item in course.episodes:
            lines.append(f"[{item.therapy.therapy_id}] {self.episode(item.therapy)}")
            lines.extend(f"    {line}" for line in self.reading(item.reading))
        return lines


def _lab(value: Decimal | None) -> str:
    """A CRP as precise as it was entered (7.59 stays 7.59); empty when missing."""
    return "" if value is None else display_value(value)


def _shown(value: Decimal | None) -> str:
    """A score to one decimal, half away from zero (spec §3); empty when missing."""
    return "" if value is None else scoring.display_round(value)
