"""Fixtures of the clinic web app's tests: the real app on a fresh database, and accounts
created through the real path (account, one-time link, password)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from bot.clock import FixedClock
from bot.config import Settings
from bot.context import AppContext
from bot.services import accounts
from bot.web.app import create_app
from tests.factories import make_physician

PASSWORD = "correct horse battery staple"


@dataclass
class Staff:
    """A staff account made as an admin would, with its password set."""

    account_id: int
    email: str
    password: str = PASSWORD


@pytest.fixture
def web_ctx(
    settings: Settings, migrated_engine: Engine, clock: FixedClock, tmp_path: Path
) -> AppContext:
    """The context the web app runs on (its services run in worker threads); exports go to
    this test's own folder."""
    private = settings.model_copy(update={"web_export_dir": str(tmp_path / "exports")})
    return AppContext(settings=private, engine=migrated_engine, clock=clock)


def make_staff(
    ctx: AppContext,
    role: str,
    *,
    email: str | None = None,
    physician_id: int | None = None,
    assign: tuple[int, ...] = (),
    language: str = "en",
) -> Staff:
    """An account whose password was set through its one-time link."""
    address = email or f"{role}-{physician_id or 0}-{len(assign)}@clinic.example"
    created = accounts.create_account(
        ctx,
        email=address,
        role=role,
        language=language,
        physician_id=physician_id,
        assigned_physician_ids=assign,
    )
    token = created.password_link.rsplit("/", 1)[1]
    accounts.set_password(ctx, token=token, password=PASSWORD)
    return Staff(created.account_id, address)


@pytest.fixture
def physician_id(web_ctx: AppContext) -> int:
    return make_physician(web_ctx, name="Dr. Lee").physician_id


@pytest.fixture
def staff(web_ctx: AppContext, physician_id: int) -> dict[str, Staff]:
    """One account of each role."""
    return {
        "admin": make_staff(web_ctx, "admin"),
        "physician": make_staff(web_ctx, "physician", physician_id=physician_id),
        "nurse": make_staff(web_ctx, "nurse", assign=(physician_id,)),
        "researcher": make_staff(web_ctx, "researcher"),
    }


@pytest.fixture
def client(web_ctx: AppContext) -> Iterator[TestClient]:
    """A browser talking plain HTTP to the app (as on the loopback behind a proxy)."""
    with TestClient(create_app(web_ctx), follow_redirects=False) as test_client:
        yield test_client


def form_token(client: TestClient, path: str = "/login") -> str:
    """The CSRF token of the form on a page."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    marker = 'name="csrf_token" value="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]


def sign_in(client: TestClient, person: Staff, *, password: str | None = None) -> int:
    """Signs in through the form; returns the status of the answer."""
    token = form_token(client)
    response = client.post(
        "/login",
        data={
            "email": person.email,
            "password": password or person.password,
            "csrf_token": token,
        },
    )
    return response.status_code


def totp_code(secret: str, clock: FixedClock) -> str:
    return pyotp.TOTP(secret).at(clock.now())
