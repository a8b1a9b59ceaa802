"""Which proxy an upstream goes through (``config/egress.py``): the environment's
conventions, ``NO_PROXY`` matching, and a deployment's own ``proxy:``."""

from __future__ import annotations

import base64

import pytest

from parley.config.egress import bypassed, environment_proxy, parse_proxy
from parley.config.loader import parse_models, resolve_groups, resolve_sso
from parley.config.sso import SsoConfig
from parley.errors import ConfigError


def test_the_scheme_picks_the_variable_and_lower_case_wins() -> None:
    env = {"HTTPS_PROXY": "http://secure:3128", "http_proxy": "plain:8080", "HTTP_PROXY": "x:1"}
    tls = environment_proxy("https://api.openai.com/v1", env)
    plain = environment_proxy("http://vllm.internal:8000/v1", env)
    assert (tls.host, tls.port) == ("secure", 3128) if tls else False
    assert (plain.host, plain.port) == ("plain", 8080) if plain else False
    assert environment_proxy("https://api.openai.com/v1", {"HTTP_PROXY": "p:1"}) is None


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        ("api.openai.com", 443, "*", True),
        ("api.openai.com", 443, "openai.com", True),
        ("api.openai.com", 443, ".openai.com", True),
        ("notopenai.com", 443, "openai.com", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("10.1.2.3", 80, "10.1.2.3:8080", False),
        ("10.1.2.3", 8080, " 10.1.2.3:8080 ", True),
        ("::1", 8000, "[::1]:8000", True),
        ("vllm", 8000, "", False),
    ],
)
def test_no_proxy_entries(host: str, port: int, no_proxy: str, expected: bool) -> None:
    assert bypassed(host, port, no_proxy) is expected


def test_credentials_become_a_basic_header_and_never_show() -> None:
    proxy = parse_proxy("http://user:p%40ss@proxy:3128")
    assert proxy.authorization is not None
    assert proxy.authorization.reveal() == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert "p@ss" not in repr(proxy)
    with pytest.raises(ValueError, match="http://"):
        parse_proxy("https://user:secret@proxy:3128")


def _deployment(**extra: object) -> dict[str, object]:
    return {
        "provider": "openai_compatible",
        "model": "llama",
        "api_base": "https://llm.example.com/v1",
        **extra,
    }


def test_a_deployment_proxy_resolves_its_password_reference() -> None:
    proxy_config = {"url": "http://proxy:3128", "username": "u"}
    proxy_config["password"] = "os.environ/PROXY_PASSWORD"
    groups = {"models": [{"name": "g", "deployments": [_deployment(proxy=proxy_config)]}]}
    (group,) = resolve_groups(parse_models(groups), {"PROXY_PASSWORD": "pw"})
    proxy = group.deployments[0].proxy
    assert proxy is not None
    assert proxy.authorization is not None
    assert proxy.authorization.reveal() == "Basic " + base64.b64encode(b"u:pw").decode()
    with pytest.raises(ConfigError, match="PROXY_PASSWORD is not set"):
        resolve_groups(parse_models(groups), {})


def test_inline_proxy_passwords_are_refused_in_the_model_file() -> None:
    groups = {"models": [{"name": "g", "deployments": [
        _deployment(proxy={"url": "http://u:inline@proxy:3128"})]}]}  # fmt: skip
    with pytest.raises(ConfigError, match="reference"):
        resolve_groups(parse_models(groups), {})


def test_direct_and_environment_defaults() -> None:
    env = {"HTTPS_PROXY": "http://proxy:3128"}
    groups = {"models": [{"name": "g", "deployments": [
        _deployment(name="a"), _deployment(name="b", proxy="direct")]}]}  # fmt: skip
    (group,) = resolve_groups(parse_models(groups), env)
    via_env, direct = group.deployments
    assert via_env.proxy is not None
    assert via_env.proxy.address == "proxy:3128"
    assert direct.proxy is None


# --- an SSO provider's egress: the same rules, decided per request URL ----------------


def _sso(**provider: object) -> SsoConfig:
    base = {"name": "corp", "issuer": "https://id.example.com", "client_id": "parley"}
    return SsoConfig.model_validate(
        {"providers": [{**base, "token_endpoint_auth_method": "none", **provider}]}
    )


def test_an_sso_provider_follows_the_environment_host_by_host() -> None:
    """Its endpoints need not share the issuer's host, so ``NO_PROXY`` is matched per
    request; loopback is not exempt unless ``NO_PROXY`` names it."""
    env = {"HTTPS_PROXY": "http://u:pw@proxy:3128", "NO_PROXY": "keys.internal", "PATH": "/bin"}
    settings = resolve_sso(_sso(), env)
    assert settings is not None
    egress = settings.providers[0].egress
    through = egress.proxy_for("https://id.example.com/.well-known/openid-configuration")
    assert through is not None
    assert through.address == "proxy:3128"
    assert egress.proxy_for("https://keys.internal/jwks") is None
    assert egress.proxy_for("http://127.0.0.1:8080/token") is None  # no HTTP_PROXY set
    assert egress.proxy_for("https://127.0.0.1/token") == through
    assert egress.environ is not None
    assert "PATH" not in egress.environ  # only the proxy variables are kept
    basic = "Basic " + base64.b64encode(b"u:pw").decode()
    assert basic in settings.secrets()  # redacted from logs and errors
    assert "pw" not in repr(settings.providers[0])


def test_an_sso_providers_own_proxy_wins_and_direct_ignores_the_environment() -> None:
    env = {"HTTPS_PROXY": "http://env-proxy:1", "NO_PROXY": "*", "SSO_PROXY_PW": "pw"}
    own = {"url": "http://corp-proxy:3128", "username": "u", "password": "os.environ/SSO_PROXY_PW"}
    settings = resolve_sso(_sso(proxy=own), env)
    assert settings is not None
    proxy = settings.providers[0].egress.proxy_for("https://id.example.com/token")
    assert proxy is not None
    assert proxy.address == "corp-proxy:3128"  # NO_PROXY=* does not apply to proxy:
    assert proxy.authorization is not None
    assert proxy.authorization.reveal() == "Basic " + base64.b64encode(b"u:pw").decode()
    direct = resolve_sso(_sso(proxy="direct"), env)
    assert direct is not None
    assert direct.providers[0].egress.proxy_for("https://id.example.com/token") is None


def test_an_sso_proxy_password_inline_or_unset_is_an_error_naming_where() -> None:
    inline = {"url": "http://u:inline-pw@proxy:3128"}
    with pytest.raises(ConfigError, match=r"sso\.providers\[0\]\.proxy\.url") as refused:
        resolve_sso(_sso(proxy=inline), {})
    assert "inline-pw" not in str(refused.value)
    unset = {"url": "http://proxy:3128", "username": "u", "password": "os.environ/SSO_PROXY_PW"}
    with pytest.raises(ConfigError, match=r"sso\.providers\[0\]\.proxy\.password.*SSO_PROXY_PW"):
        resolve_sso(_sso(proxy=unset), {})
    with pytest.raises(ConfigError, match=r"sso\.providers\[0\]\.proxy: a proxy must be"):
        resolve_sso(_sso(), {"HTTPS_PROXY": "https://u:secret@proxy:3128"})
