"""Sign-in, sessions, CSRF, throttling, the second factor and the security headers of the web
app, over HTTP on a real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.clock import FixedClock
from bot.context import AppContext
from bot.services import accounts
from bot.web.app import create_app
from tests.web.conftest import PASSWORD, Staff, form_token, make_staff, sign_in, totp_code


def _cookie_header(response_headers: list[tuple[str, str]], name: str) -> str:
    for key, value in response_headers:
        if key.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value
    raise AssertionError(f"no {name} cookie set")


class TestFactory:
    def test_every_page_carries_the_security_headers(self, client: TestClient) -> None:
        """CSP without inline script, no framing, no sniffing, no caching, no referrer."""
        response = client.get("/login")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "<script" not in response.text
        assert " style=" not in response.text

    def test_https_adds_strict_transport_security(self, web_ctx: AppContext) -> None:
        """Served over HTTPS, browsers are told to stay on HTTPS."""
        with TestClient(create_app(web_ctx), base_url="https://testserver") as https:
            assert "max-age" in https.get("/login").headers["strict-transport-security"]

    def test_unknown_path_is_a_plain_not_found(self, client: TestClient) -> None:
        """An unknown path answers 404 with the app's own page."""
        response = client.get("/nothing-here")
        assert response.status_code == 404
        assert "Not found" in response.text


class TestSignIn:
    def test_right_password_opens_a_session_with_a_strict_cookie(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """The session cookie is HttpOnly and SameSite=Strict, and opens the app."""
        token = form_token(client)
        response = client.post(
            "/login",
            data={"email": staff["admin"].email, "password": PASSWORD, "csrf_token": token},
        )
        assert response.status_code == 303
        cookie = _cookie_header(response.headers.multi_items(), "spondybot_session")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # plain HTTP (loopback behind a proxy)
        assert client.get("/staff").status_code == 200

    def test_cookie_is_secure_over_https(
        self, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """Served over HTTPS, the session cookie is only ever sent over HTTPS."""
        with TestClient(
            create_app(web_ctx), base_url="https://testserver", follow_redirects=False
        ) as https:
            token = form_token(https)
            response = https.post(
                "/login",
                data={"email": staff["admin"].email, "password": PASSWORD, "csrf_token": token},
            )
            cookie = _cookie_header(response.headers.multi_items(), "spondybot_session")
            assert "Secure" in cookie

    def test_wrong_password_and_unknown_email_get_the_same_answer(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """Nobody learns whether an e-mail has an account."""
        wrong = sign_in(client, staff["admin"], password="not the password at all")
        unknown = sign_in(client, Staff(0, "nobody@clinic.example"))
        assert wrong == unknown == 400
        assert "spondybot_session" not in client.cookies
        assert client.get("/staff").status_code == 303

    def test_login_form_without_its_csrf_token_is_refused(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """A sign-in posted from another site (no token, or a forged one) opens nothing."""
        form_token(client)
        for token in ("", "forged-token"):
            response = client.post(
                "/login",
                data={"email": staff["admin"].email, "password": PASSWORD, "csrf_token": token},
            )
            assert response.status_code == 400
        assert "spondybot_session" not in client.cookies

    def test_next_only_leads_within_the_site(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """`next=//elsewhere` after sign-in goes home, not to another site."""
        token = form_token(client)
        response = client.post(
            "/login",
            data={
                "email": staff["admin"].email,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/steal",
            },
        )
        assert response.headers["location"] == "/"

    def test_deactivated_account_cannot_sign_in(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """A deactivated account is refused like a wrong password."""
        accounts.deactivate(web_ctx, account_id=staff["nurse"].account_id)
        assert sign_in(client, staff["nurse"]) == 400


class TestThrottling:
    def test_account_is_paused_after_five_failures_even_with_the_right_password(
        self, client: TestClient, staff: dict[str, Staff], clock: FixedClock
    ) -> None:
        """Five failures within 15 minutes pause the account; after the window it opens."""
        for _ in range(5):
            assert sign_in(client, staff["admin"], password="wrong password 123") == 400
        assert sign_in(client, staff["admin"]) == 429
        clock.advance(timedelta(minutes=16))
        assert sign_in(client, staff["admin"]) == 303

    def test_address_is_paused_across_accounts(
        self, web_ctx: AppContext, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """Guessing many accounts from one address pauses that address."""
        limit = web_ctx.settings.web_login_max_failures_per_address
        for number in range(limit):
            assert sign_in(client, Staff(0, f"guess{number}@clinic.example")) == 400
        assert sign_in(client, staff["admin"]) == 429

    def test_throttling_lives_in_the_database(
        self, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """A second web process sees the failures of the first."""
        with TestClient(create_app(web_ctx), follow_redirects=False) as first:
            for _ in range(5):
                sign_in(first, staff["admin"], password="wrong password 123")
        with TestClient(create_app(web_ctx), follow_redirects=False) as second:
            assert sign_in(second, staff["admin"]) == 429


class TestSessions:
    def test_idle_session_ends(
        self, client: TestClient, staff: dict[str, Staff], clock: FixedClock
    ) -> None:
        """After 30 idle minutes the next request goes back to sign-in."""
        sign_in(client, staff["admin"])
        clock.advance(timedelta(minutes=29))
        assert client.get("/staff").status_code == 200
        clock.advance(timedelta(minutes=30))
        response = client.get("/staff")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login")

    def test_busy_session_still_ends_at_the_absolute_timeout(
        self, client: TestClient, staff: dict[str, Staff], clock: FixedClock
    ) -> None:
        """Activity keeps a session alive for at most 12 hours."""
        sign_in(client, staff["admin"])
        for _ in range(35):  # every 20 minutes for 11 h 40 min
            clock.advance(timedelta(minutes=20))
            assert client.get("/staff").status_code == 200
        clock.advance(timedelta(minutes=21))
        assert client.get("/staff").status_code == 303

    def test_sign_out_ends_the_session_on_the_server(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """A copied cookie is worthless after sign-out."""
        sign_in(client, staff["admin"])
        stolen = client.cookies["spondybot_session"]
        token = form_token(client, "/staff")
        assert client.post("/logout", data={"csrf_token": token}).status_code == 303
        client.cookies.set("spondybot_session", stolen)
        assert client.get("/staff").status_code == 303

    def test_sign_out_needs_the_csrf_token(
        self, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """Another site cannot sign a person out."""
        sign_in(client, staff["admin"])
        assert client.post("/logout", data={}).status_code == 403
        assert client.get("/staff").status_code == 200

    def test_admin_revokes_every_session_of_an_account(
        self, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """ "Sign out everywhere" ends the person's open sessions at once."""
        with (
            TestClient(create_app(web_ctx), follow_redirects=False) as admin,
            TestClient(create_app(web_ctx), follow_redirects=False) as physician,
        ):
            sign_in(admin, staff["admin"])
            sign_in(physician, staff["physician"])
            assert physician.get("/").status_code == 303
            assert physician.get("/").headers["location"] == "/patients"
            token = form_token(admin, "/staff")
            account = staff["physician"].account_id
            response = admin.post(f"/staff/{account}/sessions/revoke", data={"csrf_token": token})
            assert response.status_code == 303
            assert physician.get("/").headers["location"].startswith("/login")

    def test_deactivation_ends_open_sessions(
        self, web_ctx: AppContext, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """A deactivated person's open browser is signed out on its next request."""
        sign_in(client, staff["admin"])
        other = make_staff(web_ctx, "admin", email="second@clinic.example")
        with TestClient(create_app(web_ctx), follow_redirects=False) as second:
            sign_in(second, other)
            token = form_token(client, "/staff")
            client.post(f"/staff/{other.account_id}/deactivate", data={"csrf_token": token})
            assert second.get("/staff").status_code == 303


class TestCsrf:
    def test_staff_form_without_the_session_token_changes_nothing(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """A form posted without (or with another session's) token is refused."""
        sign_in(client, staff["admin"])
        before = len(accounts.list_accounts(web_ctx))
        for data in (
            {"email": "x@clinic.example", "role": "researcher"},
            {"email": "x@clinic.example", "role": "researcher", "csrf_token": "forged"},
        ):
            assert client.post("/staff", data=data).status_code == 403
        victim = staff["nurse"].account_id
        assert client.post(f"/staff/{victim}/deactivate", data={}).status_code == 403
        rows = accounts.list_accounts(web_ctx)
        assert len(rows) == before
        assert all(row.active for row in rows)

    def test_token_of_one_session_does_not_work_in_another(
        self, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """Each session has its own CSRF token."""
        with (
            TestClient(create_app(web_ctx), follow_redirects=False) as first,
            TestClient(create_app(web_ctx), follow_redirects=False) as second,
        ):
            sign_in(first, staff["admin"])
            sign_in(second, staff["admin"])
            token = form_token(first, "/staff")
            response = second.post(
                "/staff", data={"email": "y@clinic.example", "role": "nurse", "csrf_token": token}
            )
            assert response.status_code == 403


class TestPasswordLinks:
    def test_link_sets_the_password_once(self, client: TestClient, web_ctx: AppContext) -> None:
        """The one-time link works once; its second use is refused."""
        created = accounts.create_account(web_ctx, email="new@clinic.example", role="researcher")
        path = "/password/" + created.password_link.rsplit("/", 1)[1]
        token = form_token(client, path)
        data = {"password": PASSWORD, "password_again": PASSWORD, "csrf_token": token}
        assert client.post(path, data=data).status_code == 200
        assert client.get(path).status_code == 410
        other = "another long passphrase"
        replay = {"password": other, "password_again": other, "csrf_token": token}
        assert client.post(path, data=replay).status_code in (400, 410)
        with TestClient(create_app(web_ctx), follow_redirects=False) as fresh:
            assert fresh.post(path, data=replay).status_code == 400  # no form cookie
        with pytest.raises(accounts.AccountError, match="link_used"):
            accounts.set_password(web_ctx, token=path.rsplit("/", 1)[1], password=other)
        assert sign_in(client, Staff(created.account_id, "new@clinic.example")) == 303

    def test_short_password_is_refused_with_the_reason(
        self, client: TestClient, web_ctx: AppContext
    ) -> None:
        """A short password is refused, and the link still works."""
        created = accounts.create_account(web_ctx, email="new@clinic.example", role="nurse")
        path = "/password/" + created.password_link.rsplit("/", 1)[1]
        token = form_token(client, path)
        data = {"password": "short", "password_again": "short", "csrf_token": token}
        response = client.post(path, data=data)
        assert response.status_code == 400
        assert "at least 12 characters" in response.text
        assert client.get(path).status_code == 200

    def test_expired_link_is_refused(
        self, client: TestClient, web_ctx: AppContext, clock: FixedClock
    ) -> None:
        """A link older than WEB_PASSWORD_LINK_HOURS no longer works."""
        created = accounts.create_account(web_ctx, email="new@clinic.example", role="nurse")
        clock.advance(timedelta(hours=web_ctx.settings.web_password_link_hours, seconds=1))
        path = "/password/" + created.password_link.rsplit("/", 1)[1]
        assert client.get(path).status_code == 410

    def test_new_password_ends_open_sessions(
        self, web_ctx: AppContext, client: TestClient, staff: dict[str, Staff]
    ) -> None:
        """Setting a password through a new link signs the account out elsewhere."""
        sign_in(client, staff["researcher"])
        link = accounts.new_password_link(web_ctx, account_id=staff["researcher"].account_id)
        accounts.set_password(
            web_ctx, token=link.rsplit("/", 1)[1], password="another long passphrase"
        )
        assert client.get("/").headers["location"].startswith("/login")


class TestSecondFactor:
    def test_required_role_sets_up_totp_before_anything_else(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff], clock: FixedClock
    ) -> None:
        """When an admin requires TOTP for physicians, a physician sets it up at sign-in and
        cannot open a page before; the next sign-in asks for the code."""
        accounts.require_totp(web_ctx, role="physician", required=True)
        token = form_token(client)
        response = client.post(
            "/login",
            data={"email": staff["physician"].email, "password": PASSWORD, "csrf_token": token},
        )
        assert response.headers["location"] == "/account/second-factor"
        assert client.get("/staff").headers["location"] == "/account/second-factor"
        page = client.get("/account/second-factor")
        assert page.status_code == 200
        assert 'src="data:image/svg+xml' in page.text
        secret = page.text.split("<code>", 1)[1].split("</code>", 1)[0]
        csrf = page.text.split('name="csrf_token" value="', 2)[2].split('"', 1)[0]
        wrong = client.post("/account/second-factor", data={"code": "000000", "csrf_token": csrf})
        assert wrong.status_code == 400
        right = client.post(
            "/account/second-factor",
            data={"code": totp_code(secret, clock), "csrf_token": csrf},
        )
        assert right.status_code == 303
        assert client.get("/").headers["location"] == "/patients"

        with TestClient(create_app(web_ctx), follow_redirects=False) as later:
            sign_in(later, staff["physician"])
            assert later.get("/").headers["location"] == "/login/code"
            csrf = form_token(later, "/login/code")
            bad = later.post("/login/code", data={"code": "123456", "csrf_token": csrf})
            assert bad.status_code == 400
            good = later.post(
                "/login/code", data={"code": totp_code(secret, clock), "csrf_token": csrf}
            )
            assert good.status_code == 303
            assert later.get("/").headers["location"] == "/patients"

    def test_code_guessing_is_throttled(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff], clock: FixedClock
    ) -> None:
        """Five wrong codes pause the account like five wrong passwords."""
        accounts.require_totp(web_ctx, role="researcher", required=True)
        sign_in(client, staff["researcher"])
        page = client.get("/account/second-factor")
        secret = page.text.split("<code>", 1)[1].split("</code>", 1)[0]
        csrf = page.text.split('name="csrf_token" value="', 2)[2].split('"', 1)[0]
        client.post(
            "/account/second-factor", data={"code": totp_code(secret, clock), "csrf_token": csrf}
        )
        with TestClient(create_app(web_ctx), follow_redirects=False) as later:
            sign_in(later, staff["researcher"])
            csrf = form_token(later, "/login/code")
            for _ in range(5):
                later.post("/login/code", data={"code": "000000", "csrf_token": csrf})
            response = later.post(
                "/login/code", data={"code": totp_code(secret, clock), "csrf_token": csrf}
            )
            assert response.status_code == 429


class TestStaffPage:
    def test_admin_creates_an_account_and_sees_its_link_once(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """The new account's one-time link is shown on the answer, and works."""
        sign_in(client, staff["admin"])
        token = form_token(client, "/staff")
        page = client.post(
            "/staff",
            data={"csrf_token": token, "email": "New@Clinic.example", "role": "researcher"},
        )
        assert page.status_code == 200
        link = page.text.split('<code class="link">', 1)[1].split("</code>", 1)[0]
        assert link.startswith(f"{web_ctx.settings.web_base_url}/password/")
        assert "new@clinic.example" in client.get("/staff").text
        assert '<code class="link">' not in client.get("/staff").text

    def test_admin_reassigns_a_nurse(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """Removing the nurse's physician takes their lab entry for that physician away."""
        sign_in(client, staff["admin"])
        token = form_token(client, "/staff")
        nurse = staff["nurse"].account_id
        response = client.post(f"/staff/{nurse}/assignments", data={"csrf_token": token})
        assert response.status_code == 303
        row = next(r for r in accounts.list_accounts(web_ctx) if r.account_id == nurse)
        assert row.assigned_physician_ids == ()
        researcher = staff["researcher"].account_id
        refused = client.post(f"/staff/{researcher}/assignments", data={"csrf_token": token})
        assert refused.status_code == 400

    def test_admin_cannot_deactivate_themself(
        self, client: TestClient, web_ctx: AppContext, staff: dict[str, Staff]
    ) -> None:
        """The last way back in is never locked by a slip of the mouse."""
        sign_in(client, staff["admin"])
        token = form_token(client, "/staff")
        own = staff["admin"].account_id
        response = client.post(f"/staff/{own}/deactivate", data={"csrf_token": token})
        assert response.status_code == 400
        assert all(row.active for row in accounts.list_accounts(web_ctx))
