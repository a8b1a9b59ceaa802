"""Single sign-on against a real OpenID Provider (npm's oidc-provider, ``tests/oidc``):
the authorization code flow with PKCE, state and nonce through a real Parley server, the
account it ends in, everything that must be refused, SSO only, and logout."""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from structlog.testing import capture_logs

from parley.app import create_app
from parley.config import Settings
from parley.config.loader import resolve_sso
from parley.config.sso import SsoConfig
from parley.store.tables import audit_log, auth_sessions, sso_identities, users
from parley.store.tables import teams as teams_table
from parley.testing.fake_upstream import FakeUpstream
from parley.testing.servers import LoopThread, fake_models, free_port, serve_in_thread
from tests.backends import sqlite_url
from tests.forward_proxy import PASSWORD as PROXY_PW
from tests.forward_proxy import USER, ForwardProxy, running_proxy
from tests.oidc import CLIENT_SECRET, CLIENT_SECRET_ENV, OpenIdProvider, running_provider
from tests.polling import eventually

COOKIE_MODE = {"x-parley-refresh-cookie": "1"}
ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice-sub": {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Admin",
        "groups": ["staff", "parley-admins"],
    },
    "bob-sub": {"email": "bob@example.com", "email_verified": True, "name": "Bob"},
    "carol-sub": {"email": "carol@example.com", "email_verified": False, "name": "Carol"},
    "dave-sub": {"email": "dave@elsewhere.org", "email_verified": True, "name": "Dave"},
}
MAPPINGS = [
    {"claim": "groups", "value": "parley-admins", "team": "Engineering", "role": "admin"},
    {"claim": "groups", "value": "staff", "team": "Everyone", "role": "member"},
]


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[OpenIdProvider]:
    with running_provider(tmp_path, ACCOUNTS) as provider:
        yield provider


class Parley:
    def __init__(self, url: str, app: Any, loop: LoopThread, stop: Callable[[], None]) -> None:
        self.url = url
        self.app = app
        self.loop = loop
        self.stop = stop
        """Shut this server down (its lifespan's close path) before the test ends."""

    def query(self, statement: Any) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            async with self.app.state.services.db.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(statement)]

        return self.loop.run(run())

    def execute(self, statement: Any) -> None:
        async def run() -> None:
            async with self.app.state.services.db.write() as conn:
                await conn.execute(statement)

        self.loop.run(run())

    def audit(self, action: str) -> list[dict[str, Any]]:
        return self.query(select(audit_log).where(audit_log.c.action == action))


StartParley = Callable[..., Parley]


def sso_section(issuer: str, **overrides: Any) -> dict[str, Any]:
    provider = {
        "name": "corp",
        "display_name": "Acme ID",
        "issuer": issuer,
        "client_id": "parley",
        "client_secret": f"os.environ/{CLIENT_SECRET_ENV}",
        "scopes": ["openid", "email", "profile", "groups"],
        "mappings": MAPPINGS,
        **overrides.pop("provider", {}),
    }
    return {"providers": [provider], **overrides}


@pytest.fixture
def start(
    loop_thread: LoopThread, fake: FakeUpstream, idp: OpenIdProvider, tmp_path: Path
) -> Iterator[StartParley]:
    """Parley with the provider ``corp`` configured (``sso`` overrides the section), and
    registered at the provider as client ``parley`` with this server's callback.
    ``environ``: the environment the config is resolved against (proxy variables, a proxy
    password), besides the client secret; the test process's own is left alone, so the
    test's browser never goes through a proxy meant for Parley."""
    servers = contextlib.ExitStack()

    def run(
        sso: dict[str, Any] | None = None, environ: dict[str, str] | None = None, **settings: Any
    ) -> Parley:
        models = fake_models(fake.url)
        section = SsoConfig.model_validate(sso or sso_section(idp.issuer))
        models.sso = resolve_sso(section, {CLIENT_SECRET_ENV: CLIENT_SECRET, **(environ or {})})
        settings.setdefault("database_url", sqlite_url(tmp_path))
        app = create_app(Settings(**settings), models=models)
        own = contextlib.ExitStack()
        url = own.enter_context(serve_in_thread(loop_thread, app))
        servers.callback(own.close)
        return Parley(url, app, loop_thread, own.close)

    with servers:
        yield run


def register_client(idp: OpenIdProvider, *parleys: Parley) -> None:
    idp.add_client(
        "parley",
        redirect_uris=[f"{p.url}/auth/oidc/corp/callback" for p in parleys],
        post_logout_redirect_uris=[f"{p.url}/login" for p in parleys],
    )


def to_callback(browser: httpx.Client, parley: Parley, idp: OpenIdProvider, login: str) -> str:
    """Start at Parley, sign in at the provider as ``login``; the callback URL the
    provider redirects to (not followed yet)."""
    response = browser.get(f"{parley.url}/auth/oidc/corp/login")
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(f"{idp.issuer}/auth?")
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"]
    assert query["state"]
    assert query["code_challenge"]
    for _ in range(10):
        response = browser.get(location)
        if response.status_code == 200 and "<form" in response.text:  # the sign-in page
            action = re.search(r'action="([^"]+)"', response.text)
            assert action is not None
            response = browser.post(urljoin(location, action.group(1)), data={"login": login})
        assert response.status_code in (302, 303), response.text
        location = urljoin(location, response.headers["location"])
        if location.startswith(parley.url) or "/auth/oidc/corp/callback" in location:
            return location
    raise AssertionError("the provider never redirected back")


def sign_in(
    browser: httpx.Client, parley: Parley, idp: OpenIdProvider, login: str
) -> httpx.Response:
    return browser.get(to_callback(browser, parley, idp, login))


def refused_with(response: httpx.Response) -> str | None:
    """The ``sso_error`` a refused callback redirects to the login page with."""
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    if location.path != "/login":
        return None
    return parse_qs(location.query)["sso_error"][0]


def session(browser: httpx.Client, parley: Parley) -> dict[str, Any]:
    """What the web app does on load: refresh from the cookie, then ask who it is."""
    tokens = browser.post(f"{parley.url}/auth/refresh", headers=COOKIE_MODE, json={})
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    me = browser.get(f"{parley.url}/api/me", headers={"authorization": f"Bearer {access}"})
    assert me.status_code == 200, me.text
    return {**me.json(), "access_token": access}


def no_session(browser: httpx.Client, parley: Parley) -> bool:
    refused = browser.post(f"{parley.url}/auth/refresh", headers=COOKIE_MODE, json={})
    return refused.status_code == 401


def refused_sign_in(parley: Parley, idp: OpenIdProvider, login: str) -> str | None:
    """Sign in as ``login`` in a fresh browser, which must end with no session; the
    ``sso_error`` the callback answered with."""
    with httpx.Client() as browser:
        code = refused_with(sign_in(browser, parley, idp, login))
        assert no_session(browser, parley)
    return code


PASSWORD = "a long horse battery"


def register(parley: Parley, email: str, name: str) -> httpx.Response:
    """A password account, made the way the web app's registration makes one."""
    body = {"email": email, "password": PASSWORD, "name": name}
    return httpx.post(f"{parley.url}/auth/register", json=body)


def test_an_account_with_only_single_sign_on_is_deleted_after_a_recent_sign_in(
    start: StartParley, idp: OpenIdProvider
) -> None:
    """It has no password it knows and no passkey: a sign-in at the provider within ten
    minutes stands for one; an older session is told to sign in again."""
    parley = start()
    register_client(idp, parley)
    with httpx.Client() as browser:
        sign_in(browser, parley, idp, "alice-sub")
        me = session(browser, parley)
        # the session began eleven minutes ago: a fresh access token keeps that auth_time
        parley.execute(
            update(auth_sessions)
            .where(auth_sessions.c.user_id == me["id"])
            .values(auth_time_ms=auth_sessions.c.auth_time_ms - 660_000)
        )
        aged = session(browser, parley)
        body = {"confirm": "alice@example.com", "password": ""}
        refused = browser.post(
            f"{parley.url}/api/account/delete",
            json=body,
            headers={"authorization": f"Bearer {aged['access_token']}"},
        )
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "reauthentication_required"
        assert "sign in again with your provider" in refused.json()["error"]["message"]
    with httpx.Client() as again:  # signed in again: now it is recent
        sign_in(again, parley, idp, "alice-sub")
        fresh = session(again, parley)
        deleted = again.post(
            f"{parley.url}/api/account/delete",
            json=body,
            headers={"authorization": f"Bearer {fresh['access_token']}"},
        )
        assert deleted.status_code == 200, deleted.text
    assert parley.query(select(users).where(users.c.id == me["id"])) == []
    (entry,) = parley.audit("user.deleted")
    assert entry["detail"]["reauth"] == "recent_sso"


def test_first_sign_in_makes_the_account_with_the_mapped_teams_and_roles(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    with httpx.Client() as browser:
        done = sign_in(browser, parley, idp, "alice-sub")
        assert done.status_code == 303
        assert done.headers["location"] == "/"
        assert "parley_refresh" in done.headers["set-cookie"]
        assert "HttpOnly" in done.headers["set-cookie"]
        me = session(browser, parley)
    assert me["email"] == "alice@example.com"
    assert me["name"] == "Alice Admin"
    assert me["email_verified"] is True
    assert me["is_admin"] is False
    assert me["amr"] == ["oidc"]
    teams = {t["id"]: t["role"] for t in me["teams"]}
    names = {r["id"]: r["name"] for r in parley.query(select(teams_table))}
    assert {names[t]: role for t, role in teams.items()} == {
        "Engineering": "admin",
        "Everyone": "member",
    }
    assert [r["detail"] for r in parley.audit("user.register")] == [
        {"method": "oidc", "provider": "corp"}
    ]
    assert parley.audit("auth.login")[0]["actor"] == me["id"]
    # a second sign-in finds the same account by its subject
    with httpx.Client() as other:
        sign_in(other, parley, idp, "alice-sub")
        assert session(other, parley)["id"] == me["id"]
    assert len(parley.audit("user.register")) == 1


def test_an_existing_account_is_linked_by_its_verified_email(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    made = register(parley, "bob@example.com", "Bob")
    assert made.status_code == 201, made.text
    with httpx.Client() as browser:
        sign_in(browser, parley, idp, "bob-sub")
        assert session(browser, parley)["id"] == made.json()["id"]
    assert [r["subject"] for r in parley.query(select(sso_identities))] == ["bob-sub"]
    assert len(parley.audit("auth.sso_linked")) == 1


def test_an_unverified_email_is_refused_and_links_nothing(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    made = register(parley, "carol@example.com", "C")
    assert made.status_code == 201
    with httpx.Client() as browser:
        done = sign_in(browser, parley, idp, "carol-sub")
        assert refused_with(done) == "sso_email_unverified"
        assert "parley_refresh" not in done.headers.get("set-cookie", "")
        assert no_session(browser, parley)
    assert parley.query(select(sso_identities)) == []
    failed = parley.audit("auth.login_failed")
    assert [r["detail"]["reason"] for r in failed] == ["sso_email_unverified"]


def test_a_tampered_id_token_is_refused(start: StartParley, idp: OpenIdProvider) -> None:
    parley = start()
    register_client(idp, parley)
    idp.next(tamper="payload")  # the payload changed after the provider signed it
    assert refused_sign_in(parley, idp, "alice-sub") == "sso_id_token"
    assert parley.query(select(sso_identities)) == []


def test_a_wrong_nonce_is_refused(start: StartParley, idp: OpenIdProvider) -> None:
    parley = start()
    register_client(idp, parley)
    idp.next(nonce="not-the-nonce-parley-sent")  # a validly signed token, another nonce
    assert refused_sign_in(parley, idp, "alice-sub") == "sso_nonce"


def test_a_wrong_state_a_replay_and_a_callback_in_another_browser_are_refused(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    with httpx.Client() as browser:
        callback = to_callback(browser, parley, idp, "alice-sub")
        forged = re.sub(r"state=[^&]+", "state=forged-state", callback)
        assert refused_with(browser.get(forged)) == "sso_state"
        assert no_session(browser, parley)
    # a callback reaching a browser that did not start the sign-in (login CSRF)
    with httpx.Client() as browser, httpx.Client() as victim:
        callback = to_callback(browser, parley, idp, "alice-sub")
        assert refused_with(victim.get(callback)) == "sso_state"
        assert no_session(victim, parley)
        # the flow's cookie alone does not make a used state usable again
        flow = browser.cookies.get("parley_sso")
        assert refused_with(browser.get(callback)) is None  # this one signs in
        browser.cookies.set("parley_sso", flow, path="/auth/oidc/corp")
        assert refused_with(browser.get(callback)) == "sso_state"
    reasons = [r["detail"]["reason"] for r in parley.audit("auth.login_failed")]
    assert reasons == ["sso_state", "sso_state", "sso_state"]


def test_an_email_domain_not_allowed_is_refused(start: StartParley, idp: OpenIdProvider) -> None:
    parley = start(sso_section(idp.issuer, provider={"allowed_email_domains": ["example.com"]}))
    register_client(idp, parley)
    assert refused_sign_in(parley, idp, "dave-sub") == "sso_domain_refused"
    with httpx.Client() as browser:
        assert refused_with(sign_in(browser, parley, idp, "bob-sub")) is None


def test_sso_only_turns_passwords_off(start: StartParley, idp: OpenIdProvider) -> None:
    parley = start(sso_section(idp.issuer, only=True))
    register_client(idp, parley)
    setup = httpx.get(f"{parley.url}/auth/setup").json()
    assert setup["sso_only"] is True
    assert setup["registration_open"] is False
    assert setup["sso_providers"] == [
        {"name": "corp", "display_name": "Acme ID", "login_url": "/auth/oidc/corp/login"}
    ]
    registered = register(parley, "bob@example.com", "Bob")
    assert registered.status_code == 403
    assert registered.json()["error"]["code"] == "sso_only"
    with httpx.Client() as browser:
        sign_in(browser, parley, idp, "bob-sub")
        session(browser, parley)
    login = httpx.post(
        f"{parley.url}/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "sso_only"
    reset = httpx.post(f"{parley.url}/auth/password-reset", json={"email": "bob@example.com"})
    assert reset.status_code == 403
    assert parley.audit("auth.login_failed")[-1]["detail"] == {
        "method": "password",
        "reason": "sso_only",
    }


def test_logout_ends_the_session_here_and_at_the_provider(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    with httpx.Client() as browser:
        sign_in(browser, parley, idp, "alice-sub")
        me = session(browser, parley)
        out = browser.post(
            f"{parley.url}/auth/logout",
            headers={**COOKIE_MODE, "authorization": f"Bearer {me['access_token']}"},
        )
        assert out.status_code == 200, out.text
        end = out.json()["end_session_url"]
        assert end.startswith(f"{idp.issuer}/session/end?")
        query = parse_qs(urlsplit(end).query)
        assert query["client_id"] == ["parley"]
        assert query["post_logout_redirect_uri"] == [f"{parley.url}/login"]
        assert no_session(browser, parley)
        # RP-initiated logout at the provider: confirm, and come back to Parley's login
        page = browser.get(end)
        assert page.status_code == 200
        assert "Yes, sign me out" in page.text
        action = re.search(r'action="([^"]+)"', page.text)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
        assert action is not None
        assert xsrf is not None
        done = browser.post(
            urljoin(end, action.group(1)), data={"xsrf": xsrf.group(1), "logout": "yes"}
        )
        assert done.status_code in (302, 303)
        assert done.headers["location"].startswith(f"{parley.url}/login")
        # the provider's session is over too: signing in again asks who you are
        started = browser.get(f"{parley.url}/auth/oidc/corp/login")
        at_provider = browser.get(started.headers["location"])
        interaction = browser.get(urljoin(str(at_provider.url), at_provider.headers["location"]))
        assert "Sign in to the test provider" in interaction.text


def test_logout_everywhere_also_ends_the_provider_session(
    start: StartParley, idp: OpenIdProvider
) -> None:
    parley = start()
    register_client(idp, parley)
    with httpx.Client() as browser:
        sign_in(browser, parley, idp, "alice-sub")
        me = session(browser, parley)
        out = browser.post(
            f"{parley.url}/auth/logout-all",
            headers={**COOKIE_MODE, "authorization": f"Bearer {me['access_token']}"},
        )
        assert out.status_code == 200, out.text
        assert out.json()["revoked_sessions"] == 1
        end = out.json()["end_session_url"]
        assert end.startswith(f"{idp.issuer}/session/end?")
        assert parse_qs(urlsplit(end).query)["post_logout_redirect_uri"] == [f"{parley.url}/login"]
        assert no_session(browser, parley)


def test_a_sign_in_started_on_one_instance_finishes_on_another(
    start: StartParley, idp: OpenIdProvider, shared: dict[str, str]
) -> None:
    """The flow's secrets travel in the signed cookie, its single use in Redis: the
    callback may land on any instance, once."""
    a, b = start(**shared), start(**shared)
    register_client(idp, a, b)
    with httpx.Client() as browser:
        callback = to_callback(browser, a, idp, "alice-sub")
        assert callback.startswith(f"{a.url}/auth/oidc/corp/callback?")
        on_b = b.url + callback.removeprefix(a.url)
        flow = browser.cookies.get("parley_sso")
        done = browser.get(on_b)
        assert refused_with(done) is None, done.headers["location"]
        assert session(browser, b)["email"] == "alice@example.com"
        browser.cookies.set("parley_sso", flow, path="/auth/oidc/corp")
        assert refused_with(browser.get(callback)) == "sso_state"  # used, on every instance


# --- egress: the provider reached through Parley's forward proxy ------------------------


@pytest.fixture(scope="module")
def forward_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with running_proxy(tmp_path_factory.mktemp("proxy")) as proxy:
        yield proxy


BACK_CHANNEL = ("/.well-known/openid-configuration", "/token", "/jwks")
"""What Parley itself asks the provider (the browser asks for the rest)."""


def connections(proxy: ForwardProxy, since: int, idp: OpenIdProvider) -> list[str]:
    """The proxy's access-log lines since line ``since`` for connections to the provider.
    proxy.py logs a connection once, with its first request: ``client_ip:client_port -
    METHOD host:port/path - status ...``."""
    host = idp.issuer.removeprefix("http://")
    return [line for line in proxy.access_log()[since:] if f" {host}/" in line]


def through_the_proxy(served: list[dict[str, Any]]) -> bool:
    """Whether every request came through proxy.py. It adds ``Via`` to the first request
    of a client connection and relays the rest of that connection as they are, over one
    connection to the provider; so each connection's first request names proxy.py, and a
    request sent direct would arrive on a connection whose first request does not."""
    first_on: dict[int, dict[str, Any]] = {}
    for request in served:
        first_on.setdefault(request["port"], request)
    return bool(served) and all("proxy.py" in (r["via"] or "") for r in first_on.values())


def test_the_providers_requests_go_through_the_environments_proxy(
    start: StartParley, idp: OpenIdProvider, forward_proxy: ForwardProxy
) -> None:
    """``HTTP_PROXY`` (the issuer is ``http://127.0.0.1``; loopback is not exempt unless
    ``NO_PROXY`` says so, and here it names other hosts) carries discovery, the keys and
    the code exchange, with the credentials from the variable's user part."""
    before = len(forward_proxy.access_log())
    environ = {
        "HTTP_PROXY": forward_proxy.url_with_credentials,
        "HTTPS_PROXY": f"http://127.0.0.1:{free_port()}",  # unused: the issuer is http://
        "NO_PROXY": "localhost,.internal",
    }
    parley = start(environ=environ)
    register_client(idp, parley)
    with httpx.Client() as browser:
        assert refused_with(sign_in(browser, parley, idp, "alice-sub")) is None
        assert session(browser, parley)["email"] == "alice@example.com"
    served = idp.requests(*BACK_CHANNEL)
    assert [(r["method"], r["path"]) for r in served] == [
        ("GET", "/.well-known/openid-configuration"),
        ("POST", "/token"),
        ("GET", "/jwks"),
    ]
    assert through_the_proxy(served)
    assert idp.requests("/auth")[0]["via"] is None  # the browser went direct
    # proxy.py logs a connection when it ends: Parley's ends as Parley shuts down
    parley.stop()
    opened = len({r["port"] for r in served})  # one per connection, kept alive: one
    eventually(lambda: len(connections(forward_proxy, before, idp)) >= opened)
    logged = connections(forward_proxy, before, idp)
    assert len(logged) == opened, logged
    assert " - GET " in logged[0]
    assert "/.well-known/openid-configuration - 200 OK" in logged[0]


def test_no_proxy_naming_the_provider_sends_it_direct(
    start: StartParley, idp: OpenIdProvider, forward_proxy: ForwardProxy
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: only direct works
    parley = start(environ={"http_proxy": dead, "NO_PROXY": "127.0.0.1"})
    register_client(idp, parley)
    with httpx.Client() as browser:
        assert refused_with(sign_in(browser, parley, idp, "bob-sub")) is None
    served = idp.requests(*BACK_CHANNEL)
    assert len(served) == 3
    assert all(r["via"] is None for r in served)


def test_one_client_and_one_connection_serve_successive_sign_ins_and_close_at_shutdown(
    start: StartParley, idp: OpenIdProvider
) -> None:
    """Every back-channel request of two sign-ins arrives from the same source port: one
    kept-alive connection, not one per fetch. Shutting Parley down closes the client."""
    parley = start()
    register_client(idp, parley)
    oidc = parley.app.state.services.sso.client("corp")
    for login in ("alice-sub", "bob-sub"):
        with httpx.Client() as browser:
            assert refused_with(sign_in(browser, parley, idp, login)) is None
    served = idp.requests(*BACK_CHANNEL)
    # discovery and the keys are fetched once; each sign-in exchanges its own code
    assert [r["path"] for r in served] == [
        "/.well-known/openid-configuration",
        "/token",
        "/jwks",
        "/token",
    ]
    assert len({r["port"] for r in served}) == 1, served
    assert parley.app.state.services.sso.client("corp") is oidc
    http = oidc.http
    assert not http.is_closed
    parley.stop()
    assert http.is_closed


def test_a_providers_own_proxy_with_its_password_from_the_environment(
    start: StartParley, idp: OpenIdProvider, forward_proxy: ForwardProxy
) -> None:
    """``proxy:`` on the provider wins over the environment (``NO_PROXY: *`` here)."""
    proxy = {"url": forward_proxy.url, "username": USER, "password": "os.environ/SSO_PROXY_PW"}
    parley = start(
        sso_section(idp.issuer, provider={"proxy": proxy}),
        environ={"SSO_PROXY_PW": PROXY_PW, "NO_PROXY": "*"},
    )
    register_client(idp, parley)
    with httpx.Client() as browser:
        assert refused_with(sign_in(browser, parley, idp, "alice-sub")) is None
    served = idp.requests(*BACK_CHANNEL)
    assert len(served) == 3
    assert through_the_proxy(served)


def test_a_wrong_proxy_password_is_a_clear_error_that_shows_no_password(
    start: StartParley, idp: OpenIdProvider, forward_proxy: ForwardProxy
) -> None:
    wrong = "wrong-proxy-pa55word-xyz"
    proxy = {"url": forward_proxy.url, "username": USER, "password": "os.environ/SSO_PROXY_PW"}
    parley = start(
        sso_section(idp.issuer, provider={"proxy": proxy}), environ={"SSO_PROXY_PW": wrong}
    )
    register_client(idp, parley)
    with capture_logs() as logs, httpx.Client() as browser:
        answer = browser.get(f"{parley.url}/auth/oidc/corp/login")
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "sso_unavailable"
    assert "egress proxy refused" in error["message"]
    assert "407" in error["message"]
    assert idp.requests(*BACK_CHANNEL) == []  # the proxy let nothing through
    basic = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
    for secret in (wrong, basic):
        assert secret not in answer.text
        assert secret not in repr(logs)
