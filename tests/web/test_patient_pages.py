"""The patient list and patient page: who sees whom, attention order, scores with their states
and lab dates, and the audit trail of every patient page opened."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.context import AppContext
from bot.web.app import create_app
from storage import audit
from tests.conftest import T0
from tests.digest import builders
from tests.web.conftest import Staff, make_staff, sign_in


@pytest.fixture
def clinic(web_ctx: AppContext, physician_id: int) -> dict[str, int]:
    """Dr. Lee's seed-case patient (very high ASDAS-CRP), a quiet patient of Dr. Lee, and a
    patient of another physician."""
    seed = builders.patient(web_ctx, physician_id, ref="SEED-1")
    quiet = builders.patient(web_ctx, physician_id, ref="QUIET-2")
    other_physician = builders.physician(web_ctx, telegram_user_id=0)
    other = builders.patient(web_ctx, other_physician, ref="OTHER-3")
    done = T0 - timedelta(days=1)
    # Spec §5: back pain 5, stiffness 1 h, global 5, peripheral 0, CRP 64.6 → ASDAS-CRP 3.876.
    builders.completed(
        web_ctx, seed, done, item=3, back=5, peripheral=0, minutes=60, patient_global=5
    )
    builders.crp(web_ctx, seed, done - timedelta(days=2), "64.6")
    builders.completed(web_ctx, quiet, done, item=1, patient_global=1)
    builders.crp(web_ctx, quiet, done, "1")
    builders.completed(web_ctx, other, done, item=8, patient_global=8)
    return {"seed": seed, "quiet": quiet, "other": other, "other_physician": other_physician}


def _signed_in(ctx: AppContext, person: Staff) -> TestClient:
    client = TestClient(create_app(ctx), follow_redirects=False)
    assert sign_in(client, person) == 303
    return client


class TestPatientList:
    def test_physician_sees_own_patients_by_attention(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Own patients only, the very high ASDAS first, shown with its state and lab date."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            page = client.get("/patients")
        assert page.status_code == 200
        assert "OTHER-3" not in page.text
        assert page.text.index("SEED-1") < page.text.index("QUIET-2")
        assert "3.9" in page.text
        assert "very high disease activity" in page.text
        assert "ASDAS-CRP very high disease activity" in page.text  # the digest's reason
        assert "lab of 2026-02-27" in page.text

    def test_search_by_reference(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """A part of the reference narrows the list."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            page = client.get("/patients", params={"q": "quiet"})
        assert "QUIET-2" in page.text
        assert "SEED-1" not in page.text

    def test_admin_sees_everyone_and_filters_by_physician(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """An admin lists every physician's patients, or one physician's."""
        with _signed_in(web_ctx, staff["admin"]) as client:
            everyone = client.get("/patients").text
            filtered = client.get("/patients", params={"physician": clinic["other_physician"]}).text
        assert all(ref in everyone for ref in ("SEED-1", "QUIET-2", "OTHER-3"))
        assert "OTHER-3" in filtered
        assert "SEED-1" not in filtered

    def test_chinese_reader_gets_chinese_states(
        self, web_ctx: AppContext, physician_id: int, clinic: dict[str, int]
    ) -> None:
        """A zh account reads the 2018 ASAS state names in Chinese, never 缓解."""
        person = make_staff(
            web_ctx,
            "physician",
            physician_id=physician_id,
            language="zh",
            email="zh@clinic.example",
        )
        with _signed_in(web_ctx, person) as client:
            page = client.get("/patients").text
            record = client.get("/patients/QUIET-2").text
        assert "极高疾病活动" in page
        assert "患者" in page
        assert "缓解" not in page + record

    def test_german_reader_gets_german_pages(
        self, web_ctx: AppContext, physician_id: int, clinic: dict[str, int]
    ) -> None:
        """A de account reads the web app in German: navigation, the German state names, the
        weekday and language of a patient, and the page declares lang="de"."""
        person = make_staff(
            web_ctx,
            "physician",
            physician_id=physician_id,
            language="de",
            email="de@clinic.example",
        )
        with _signed_in(web_ctx, person) as client:
            page = client.get("/patients").text
            record = client.get("/patients/SEED-1").text
        assert '<html lang="de">' in page
        assert "Laboreingabe" in page
        assert "sehr hohe Krankheitsaktivität" in page
        assert "Rücken-, Nacken- oder Hüftschmerz: 5" in record
        assert "Remission" not in page + record
        for english in ("Lab entry", "very high disease activity", "Sign out"):
            assert english not in page + record, english


class TestPatientPage:
    def test_record_shows_answers_scores_and_lab_provenance(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Every questionnaire with its answers, BASDAI and ASDAS with the lab it used."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            page = client.get("/patients/SEED-1")
        assert page.status_code == 200
        text = page.text
        assert "Back, neck or hip pain: 5" in text
        assert "60 min (5.0/10)" in text
        assert "uses 64.6 mg/L of 2026-02-27" in text
        assert "very high disease activity" in text
        assert 'src="data:image/png;base64,' in text  # the course chart
        assert 'href="/labs/patient?ref=SEED-1"' in text  # the actions
        assert "New enrollment code" in text  # not linked to Telegram yet
        assert "Used by the questionnaires of" in text

    def test_every_view_is_audited(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Who opened which patient, and when, lands in the audit trail."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            client.get("/patients/SEED-1")
            client.get("/patients/SEED-1")
            client.get("/patients/OTHER-3")
            client.get("/patients/NOPE")
        with web_ctx.session() as session:
            views = [
                event
                for event in audit.list_events(session=session, entity="patient")
                if event.action == "view"
            ]
        assert [event.patient_id for event in views] == [clinic["seed"], clinic["seed"]]
        assert {event.actor for event in views} == {f"staff:{staff['physician'].account_id}"}
        assert all(event.at == T0 for event in views)

    def test_another_physicians_patient_looks_like_an_unknown_reference(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int]
    ) -> None:
        """Same status and same page for "not yours" and "does not exist"."""
        with _signed_in(web_ctx, staff["physician"]) as client:
            not_mine = client.get("/patients/OTHER-3")
            unknown = client.get("/patients/NO-SUCH-REF")
        assert not_mine.status_code == unknown.status_code == 404
        assert not_mine.text == unknown.text


PAGES = (
    "/patients",
    "/patients/SEED-1",
    "/labs",
    "/labs/patient?ref=SEED-1",
    "/enroll",
    "/digests",
    "/exports",
    "/staff",
    "/audit",
)
ALLOWED = {
    "admin": dict.fromkeys(PAGES, 200),
    "physician": {**dict.fromkeys(PAGES, 200), "/staff": 403, "/audit": 403, "/exports": 403},
    "nurse": {
        **dict.fromkeys(PAGES, 403),
        "/labs": 200,
        "/labs/patient?ref=SEED-1": 200,
        "/enroll": 200,
    },
    "researcher": {**dict.fromkeys(PAGES, 403), "/exports": 200},
}


class TestRoles:
    @pytest.mark.parametrize("role", sorted(ALLOWED))
    def test_each_page_as_each_role(
        self, web_ctx: AppContext, staff: dict[str, Staff], clinic: dict[str, int], role: str
    ) -> None:
        """Each role opens exactly its pages; the others answer 403."""
        with _signed_in(web_ctx, staff[role]) as client:
            got = {path: client.get(path).status_code for path in PAGES}
        assert got == ALLOWED[role]

    def test_anonymous_is_sent_to_sign_in(self, client: TestClient, clinic: dict[str, int]) -> None:
        """Without a session every page leads to the sign-in form, keeping where it was."""
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == f"/login?next={path.split('?')[0]}"
