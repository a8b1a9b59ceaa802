"""Stored model groups: the vault's keys and rotation, sealing and showing secrets, and
validation errors that name the field's path like the model file's."""

from __future__ import annotations

import pytest

from parley.config.stored import resolve_stored, seal, validate_group, view
from parley.config.vault import SecretBox, VaultError, hint, new_key
from parley.errors import InvalidRequest

SECRET = "sk-unit-secret-0123456789"


def _group(**dep: object) -> dict[str, object]:
    return {
        "name": "g",
        "deployments": [{"provider": "openai", "model": "gpt-4o-mini", "api_key": SECRET, **dep}],
    }


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = new_key(), new_key()
    sealed = SecretBox(old).seal(SECRET)
    assert SECRET not in sealed
    both = SecretBox(f"{new}, {old}")
    assert both.open(sealed).reveal() == SECRET
    resealed = both.reseal(sealed)
    assert SecretBox(new).open(resealed).reveal() == SECRET
    with pytest.raises(VaultError, match="opens with none"):
        SecretBox(old).open(resealed)


def test_no_key_refuses_to_seal_and_a_bad_key_is_named() -> None:
    with pytest.raises(VaultError, match="PARLEY_SECRETS_KEY is not set"):
        SecretBox(None).seal(SECRET)
    with pytest.raises(VaultError, match="must be Fernet keys") as caught:
        SecretBox("not-a-key")
    assert "not-a-key" not in str(caught.value)


def test_a_hint_shows_four_characters_at_most() -> None:
    assert hint(SECRET) == "\u2026" + SECRET[-4:]
    assert hint("short-key") == "\u2026"


def test_sealing_keeps_references_and_a_hint_keeps_the_stored_secret() -> None:
    box = SecretBox(new_key())
    stored = seal(validate_group(_group()), box)
    assert stored["deployments"][0]["api_key"].startswith("sealed:")
    shown = view(stored, box)
    assert shown["deployments"][0]["api_key"] == hint(SECRET)
    again = seal(validate_group(shown), box, previous=stored)
    assert again["deployments"][0]["api_key"] == stored["deployments"][0]["api_key"]
    reference = seal(validate_group(_group(api_key="os.environ/K")), SecretBox(None))
    assert reference["deployments"][0]["api_key"] == "os.environ/K"
    with pytest.raises(InvalidRequest, match="has none stored"):
        seal(validate_group(shown), box, previous=None)
    groups, problems = resolve_stored([stored], box, {})
    assert problems == []
    assert groups[0].deployments[0].api_key is not None
    assert groups[0].deployments[0].api_key.reveal() == SECRET


def test_validation_names_the_path() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_group(_group(timeout={"total": -1}))
    assert caught.value.param == "models.g.deployments[0].timeout.total"
    assert SECRET not in caught.value.message


def test_a_file_still_refuses_inline_secrets() -> None:
    from parley.config.loader import parse_models  # noqa: PLC0415
    from parley.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match="must be references"):
        parse_models({"models": [_group()]})


def test_bedrock_credentials_are_sealed_and_resolved() -> None:
    box = SecretBox(new_key())
    raw = {
        "name": "b",
        "deployments": [
            {
                "provider": "bedrock",
                "model": "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "aws_region": "us-east-1",
                "aws_access_key_id": "AKIAUNITTESTKEY00001",
                "aws_secret_access_key": "unit/secret/access/key/0123456789",
            }
        ],
    }
    stored = seal(validate_group(raw), box)
    dep = stored["deployments"][0]
    assert dep["aws_secret_access_key"].startswith("sealed:")
    assert dep["aws_access_key_id"].startswith("sealed:")
    assert "unit/secret" not in str(view(stored, box))
    groups, problems = resolve_stored([stored], box, {})
    assert problems == []
    aws = groups[0].deployments[0].aws
    assert aws is not None
    assert aws.secret_access_key.reveal() == "unit/secret/access/key/0123456789"


def test_aws_credentials_are_shown_as_hints_that_keep_them() -> None:
    """What the console's Bedrock fields rely on: each AWS secret (the session token too)
    is answered as its hint only, and that hint sent back keeps the sealed value."""
    box = SecretBox(new_key())
    secrets = {
        "aws_access_key_id": "ASIAUNITTESTKEY00002",
        "aws_secret_access_key": "unit/session/secret/0123456789",
        "aws_session_token": "unit-session-token-0123456789==",
    }
    raw = {
        "name": "b",
        "deployments": [
            {"provider": "bedrock", "model": "m", "aws_region": "eu-west-1", **secrets}
        ],
    }
    stored = seal(validate_group(raw), box)
    shown = view(stored, box)["deployments"][0]
    assert {k: shown[k] for k in secrets} == {k: hint(v) for k, v in secrets.items()}
    again = seal(validate_group(view(stored, box)), box, previous=stored)
    assert again == stored
    groups, problems = resolve_stored([again], box, {})
    assert problems == []
    aws = groups[0].deployments[0].aws
    assert aws is not None
    assert aws.session_token is not None
    assert aws.session_token.reveal() == secrets["aws_session_token"]


def test_credential_headers_are_sealed_and_other_headers_kept() -> None:
    box = SecretBox(new_key())
    headers = {"Authorization": f"Bearer {SECRET}", "X-Team": "blue"}
    stored = seal(validate_group(_group(api_key="os.environ/K", extra_headers=headers)), box)
    kept = stored["deployments"][0]["extra_headers"]
    assert kept["X-Team"] == "blue"
    assert kept["Authorization"].startswith("sealed:")
    shown = view(stored, box)
    assert shown["deployments"][0]["extra_headers"]["Authorization"] == hint(SECRET)
    assert SECRET not in str(shown)
    again = seal(validate_group(shown), box, previous=stored)
    assert again["deployments"][0]["extra_headers"] == kept
    groups, problems = resolve_stored([stored], box, {"K": "x" * 20})
    assert problems == []
    assert groups[0].deployments[0].extra_headers["Authorization"] == f"Bearer {SECRET}"
    with pytest.raises(InvalidRequest, match="PARLEY_SECRETS_KEY is not set") as caught:
        seal(validate_group(_group(api_key="os.environ/K", extra_headers=headers)), SecretBox(None))
    assert caught.value.param == "models.g.deployments[0].extra_headers.authorization"


def test_a_malformed_secrets_key_fails_before_the_server_binds() -> None:
    from parley.app import create_app  # noqa: PLC0415
    from parley.config import Settings  # noqa: PLC0415
    from parley.errors import ConfigError  # noqa: PLC0415
    from parley.testing.servers import models_from  # noqa: PLC0415

    with pytest.raises(ConfigError, match="PARLEY_SECRETS_KEY must be Fernet keys"):
        create_app(
            Settings(database_url="sqlite:///:memory:", secrets_key="nope"),
            models=models_from([]),
        )
