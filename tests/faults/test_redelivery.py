"""Duplicate and reordered delivery: updates arrive twice, under new ids or the same ids after a
restart, and out of order; nothing is recorded twice and nothing against the wrong item.

Reproduce: `.venv/bin/pytest tests/faults -k redelivery`.
"""

from __future__ import annotations

import random

import pytest

from bot import callbacks
from bot.domain import flow
from bot.domain.instruments import ITEM_CODES
from bot.services import labs
from tests.bot.e2e import RunningBot
from tests.factories import make_active_patient, make_patient, make_physician
from tests.faults.harness import (
    SEED,
    SimulatedPatient,
    administrations,
    answer_events,
    answer_plan,
    assert_completed_as_planned,
    finish,
    open_questionnaire,
    stored_answers,
)

pytestmark = pytest.mark.slow

PATIENTS = 8


def snapshot(bot: RunningBot, people: list[SimulatedPatient]) -> list[object]:
    """Everything the patients' presses could have changed, for before/after comparisons."""
    result: list[object] = []
    for patient in people:
        result.append(
            [(a.id, a.status, a.current_item) for a in administrations(bot.ctx, patient.patient_id)]
        )
        result.append(
            sorted(
                (a.item_code, a.raw_value, a.version)
                for a in stored_answers(bot.ctx, patient.patient_id)
            )
        )
        result.append(len(answer_events(bot.ctx, patient.patient_id)))
    return result


async def enrolled(bot: RunningBot, rng: random.Random) -> list[SimulatedPatient]:
    physician = make_physician(bot.ctx)
    people = []
    for index in range(PATIENTS):
        user = bot.api.new_user(f"R{index}")
        patient_id = make_active_patient(
            bot.ctx, physician_id=physician.physician_id, telegram_user_id=user.id
        )
        people.append(SimulatedPatient(user, patient_id, answer_plan(rng)))
    return people


class TestReorderedAndDuplicatedPresses:
    async def test_presses_out_of_order_and_twice_record_each_answer_once_in_its_place(
        self, running_bot: RunningBot
    ) -> None:
        """All of a questionnaire's presses, each twice, delivered shuffled among 8 patients:
        a press arriving before its question changes nothing, the others are stored once
        against their own item, and every press is answered."""
        api = running_bot.api
        people = await enrolled(running_bot, random.Random(SEED))
        for patient in people:
            await open_questionnaire(api, patient)
        batch = []
        for patient in people:
            (administration,) = administrations(running_bot.ctx, patient.patient_id)
            question = patient.user.last_message()["message_id"]
            for item in ITEM_CODES:
                data = callbacks.encode(
                    callbacks.AnswerButton(administration.id or 0, item, patient.plan[item])
                )
                press = patient.user.press_update(data, question, force=True)
                batch += [press, press, patient.user.press_update(data, question, force=True)]
        ids = api.push_batch(batch, seed=SEED)
        await running_bot.settle()

        refused = 0
        for patient in people:
            (administration,) = administrations(running_bot.ctx, patient.patient_id)
            stored = {
                a.item_code: int(a.raw_value)
                for a in stored_answers(running_bot.ctx, patient.patient_id)
            }
            answered = len(stored)
            assert stored == {item: patient.plan[item] for item in ITEM_CODES[:answered]}
            assert all(a.version == 1 for a in stored_answers(running_bot.ctx, patient.patient_id))
            assert len(answer_events(running_bot.ctx, patient.patient_id)) == answered
            expected = ITEM_CODES[answered] if answered < len(ITEM_CODES) else flow.SUMMARY
            assert administration.current_item == expected
            refused += len(ITEM_CODES) - answered
        assert refused > 0, "the shuffle delivered every press in order; choose another seed"
        queries = {
            u.update["callback_query"]["id"] for u in api.pushed_updates if u.update_id in ids
        }
        answered_queries = {c.params["callback_query_id"] for c in api.calls("answerCallbackQuery")}
        assert queries <= answered_queries

        before = snapshot(running_bot, people)
        api.redeliver(ids)  # the whole batch again, under new update ids
        await running_bot.settle()
        assert snapshot(running_bot, people) == before

        for patient in people:
            await finish(api, running_bot.ctx, patient)
        finished = snapshot(running_bot, people)
        everything = [u.update_id for u in api.pushed_updates]
        await running_bot.restart()
        api.redeliver(everything, same_ids=True)  # a new process sees the whole history again
        await running_bot.settle()
        assert snapshot(running_bot, people) == finished
        for patient in people:
            assert_completed_as_planned(running_bot.ctx, patient)


class TestRedeliveredMessages:
    async def test_a_typed_answer_delivered_again_answers_nothing_else(
        self, running_bot: RunningBot
    ) -> None:
        """A typed "4" that arrives again, under a new update id or after a restart under its
        own, is not taken as the answer to the next question."""
        api = running_bot.api
        (patient,) = (await enrolled(running_bot, random.Random(SEED)))[:1]
        await open_questionnaire(api, patient)
        typed = [patient.user.send_text("4"), patient.user.send_text("5")]
        await running_bot.settle()
        copies = api.redeliver(typed)
        await running_bot.settle()
        await running_bot.restart()
        api.redeliver([*typed, *copies], same_ids=True)
        await running_bot.settle()
        stored = {
            a.item_code: int(a.raw_value)
            for a in stored_answers(running_bot.ctx, patient.patient_id)
        }
        assert stored == {"q1": 4, "q2": 5}
        assert "Question 3 of 7" in patient.user.last_message()["text"]
        patient.user.send_text("4")  # typed again by the person: a new message, a new answer
        await running_bot.settle()
        stored = {
            a.item_code: int(a.raw_value)
            for a in stored_answers(running_bot.ctx, patient.patient_id)
        }
        assert stored == {"q1": 4, "q2": 5, "q3": 4}

    async def test_enrollment_and_a_saved_crp_happen_once(self, running_bot: RunningBot) -> None:
        """/start with a code and a physician's CRP Save, each delivered twice and tapped twice,
        link one account and store one lab value."""
        api, _application, ctx = running_bot
        physician = make_physician(ctx)
        created = make_patient(ctx, physician_id=physician.physician_id, ref="MRN-7001")
        ana = api.new_user("Ana")
        start = ana.send_command("/start", created.code.code)
        await running_bot.settle()
        api.redeliver([start])
        await running_bot.settle()
        assert sum("now linked" in m["text"] for m in ana.messages()) == 1

        doctor = api.new_user("Doc")
        doctor.send_command("/start", physician.code.code)
        await running_bot.settle()
        crp = doctor.send_command("/crp", "MRN-7001", "7.59")
        await running_bot.settle()
        save = doctor.buttons()[0][1]
        taps = [doctor.press(save), doctor.press(save)]
        await running_bot.settle()
        copies = api.redeliver([crp, *taps])
        await running_bot.settle()
        await running_bot.restart()
        api.redeliver([crp, *taps, *copies], same_ids=True)
        await running_bot.settle()
        assert len(labs.list_lab_values(ctx, clinic_ref="MRN-7001")) == 1
        shown = [c for c in api.calls("editMessageText") if c.chat_id == doctor.chat_id]
        assert sum("Saved" in str(c.params.get("text")) for c in shown) == 1
