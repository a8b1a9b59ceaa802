"""Risk-based step-up through HTTP on two instances sharing PostgreSQL and Redis, with
crafted client addresses (a trusted proxy's X-Forwarded-For) and a real SMTP server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

from parley.config import Settings
from parley.store.db import Database
from parley.store.tables import audit_log, login_profiles
from tests.conftest import ParleyFactory
from tests.e2e.test_access import ADMIN, error
from tests.e2e.test_auth import PASSWORD
from tests.smtp import Inbox, mail_settings, smtp_server, text_of

PARIS = "90.80.1.1"  # Orange, France
TOKYO = "133.242.0.3"  # SAKURA Internet, Japan


@pytest.fixture
def pair(shared: dict[str, str], parley: ParleyFactory) -> Iterator[tuple[str, str, Inbox, str]]:
    with smtp_server() as (inbox, port):
        settings: dict[str, Any] = {
            "admin_key": ADMIN,
            "allow_registration": True,
            "risk_enabled": True,
            "trusted_proxies": "127.0.0.1",
            "email_verification": "off",
            **mail_settings(port),
            **shared,
        }
        yield parley(**settings), parley(**settings), inbox, shared["database_url"]


def login(http: httpx.Client, email: str, ip: str) -> httpx.Response:
    return http.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"x-forwarded-for": ip},
    )


async def age_last_login(url: str, ms: int) -> None:
    """A crafted time: the account's last sign-in moved ``ms`` into the past."""
    db = Database(Settings(database_url=url).database_url)
    try:
        async with db.write() as conn:
            await conn.execute(
                login_profiles.update().values(last_ms=login_profiles.c.last_ms - ms)
            )
    finally:
        await db.close()


async def risk_entries(url: str) -> list[dict[str, Any]]:
    db = Database(Settings(database_url=url).database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(audit_log).where(audit_log.c.action == "auth.risk").order_by(audit_log.c.id)
            )
            return [dict(r) for r in rows.mappings()]
    finally:
        await db.close()


def test_step_up_by_email_deny_and_allow_across_instances(
    pair: tuple[str, str, Inbox, str],
) -> None:
    a_url, b_url, inbox, db_url = pair
    browser = httpx.Client(base_url=a_url, timeout=20)
    other = httpx.Client(base_url=b_url, timeout=20)  # another browser: no device cookie
    made = browser.post(
        "/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}
    )
    assert made.status_code == 201, made.text

    first = login(browser, "ada@example.com", PARIS)  # no history yet: allowed
    assert first.status_code == 200, first.text
    assert "access_token" in first.json()
    assert browser.cookies.get("parley_device", path="/auth")

    # known device, same network, on the other instance: allowed
    browser.base_url = httpx.URL(b_url)
    again = login(browser, "ada@example.com", PARIS)
    assert again.status_code == 200, again.text
    assert "access_token" in again.json()

    asyncio.run(age_last_login(db_url, 2 * 86_400_000))  # two days: Tokyo is reachable
    # a new browser from a new country, on instance B: a code by email (no second factor)
    stepped = login(other, "ada@example.com", TOKYO)
    assert stepped.status_code == 200, stepped.text
    body = stepped.json()
    assert body["step_up_required"] is True
    assert body["step_up_methods"] == ["email"]
    assert "access_token" not in body
    [message] = inbox.wait(1)
    assert message["Subject"] == "Your Parley sign-in code"
    found = re.search(r"\b(\d{6})\b", text_of(message))
    assert found is not None
    code = found.group(1)
    wrong = "000000" if code != "000000" else "111111"
    bad = other.post(
        "/auth/login/step-up", json={"step_up_token": body["step_up_token"], "code": wrong}
    )
    assert bad.status_code == 401
    assert error(bad)["code"] == "invalid_step_up_code"
    done = httpx.post(  # completed on instance A: the code is in the shared database
        f"{a_url}/auth/login/step-up",
        json={"step_up_token": body["step_up_token"], "code": code},
        headers={"x-forwarded-for": TOKYO},
        cookies=dict(other.cookies),
    )
    assert done.status_code == 200, done.text
    assert "access_token" in done.json()
    reused = other.post(
        "/auth/login/step-up", json={"step_up_token": body["step_up_token"], "code": code}
    )
    assert reused.status_code == 401

    # back in Paris minutes after Tokyo: impossible travel, refused and the owner told
    denied = login(browser, "ada@example.com", PARIS)
    assert denied.status_code == 403, denied.text
    assert error(denied)["code"] == "login_denied"
    notice = inbox.wait(2)[1]
    assert notice["Subject"] == "A sign-in to your Parley account was refused"
    assert PARIS in text_of(notice)

    entries = asyncio.run(risk_entries(db_url))
    outcomes = [e["detail"]["outcome"] for e in entries]
    assert outcomes == ["allow", "allow", "step_up_email", "deny_notified"]
    for entry in entries:
        assert set(entry["detail"]["signals"]) == {
            "new_device",
            "new_network",
            "impossible_travel",
            "unusual_hour",
            "recent_failures",
        }
    assert entries[2]["detail"]["signals"]["new_network"] == 1.0
    assert entries[2]["detail"]["facts"]["country"] == "JP"
    assert entries[3]["detail"]["signals"]["impossible_travel"] == 1.0
    assert entries[3]["detail"]["band"] == "deny"
    browser.close()
    other.close()


def test_an_account_with_totp_gets_its_mfa_challenge_at_the_step_up_band(
    pair: tuple[str, str, Inbox, str],
) -> None:
    a_url, b_url, inbox, db_url = pair
    browser = httpx.Client(base_url=a_url, timeout=20)
    made = browser.post(
        "/auth/register", json={"email": "bob@example.com", "password": PASSWORD, "name": "Bob"}
    )
    assert made.status_code == 201, made.text
    tokens = login(browser, "bob@example.com", PARIS).json()
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    secret = browser.post("/auth/mfa/enroll", headers=bearer).json()["secret"]
    enabled = browser.post(
        "/auth/mfa/verify", headers=bearer, json={"code": pyotp.TOTP(secret).now()}
    )
    assert enabled.status_code == 200, enabled.text
    asyncio.run(age_last_login(db_url, 2 * 86_400_000))
    other = httpx.Client(base_url=b_url, timeout=20)  # new device, new country
    answer = login(other, "bob@example.com", TOKYO).json()
    assert answer["mfa_required"] is True
    assert answer["step_up"] is True
    assert "access_token" not in answer
    assert not inbox.messages  # a second factor, not a mailed code
    outcomes = [e["detail"]["outcome"] for e in asyncio.run(risk_entries(db_url))]
    assert outcomes == ["allow", "mfa"]
    browser.close()
    other.close()
