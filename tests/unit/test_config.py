"""The model file: path-named errors, secret references, LiteLLM configs, env defaults."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from parley.config import Settings, load_models
from parley.config.secrets import Secret
from parley.errors import ConfigError

ENV = {"OPENAI_API_KEY": "sk-test-openai-000000", "ANTHROPIC_API_KEY": "sk-ant-test-0000"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "parley.yaml"
    path.write_text(text)
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_models(path, env if env is not None else ENV)
    return info.value.errors


def test_valid_file_resolves_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: chat-fast
    deployments:
      - provider: openai
        model: gpt-4o-mini
        api_key: os.environ/OPENAI_API_KEY
      - provider: anthropic
        model: claude-haiku-4-5
        api_key: os.environ/ANTHROPIC_API_KEY
""",
    )
    loaded = load_models(path, ENV)
    group = loaded.groups[0]
    assert group.name == "chat-fast"
    assert [d.api_base for d in group.deployments] == [
        "https://api.openai.com/v1",
        "https://api.anthropic.com",
    ]
    assert group.deployments[0].api_key == Secret("sk-test-openai-000000")
    assert "sk-test" not in repr(group)  # secrets never show in reprs


def test_errors_name_the_path_of_the_bad_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: gpt-4o
    deployments:
      - provider: openai
        model: gpt-4o
        api_key: os.environ/OPENAI_API_KEY
      - provider: openai
        model: gpt-4o
        api_key: os.environ/OPENAI_API_KEY
        api_base: ftp://nope
        colour: blue
      - provider: openai
        model: gpt-4o
        api_key: os.environ/OPENAI_API_KEY
        api_base: https://api.example.com:99999/v1
""",
    )
    errors = errors_of(path)
    assert any(e.startswith("models.gpt-4o.deployments[1].api_base: ") for e in errors)
    assert any(e.startswith("models.gpt-4o.deployments[1].colour: ") for e in errors)
    assert any(e.startswith("models.gpt-4o.deployments[2].api_base: ") for e in errors)


def test_inline_secret_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: m
    deployments: [{provider: openai, model: x, api_key: sk-inline-secret}]
""",
    )
    (error,) = errors_of(path)
    assert error.startswith("models.m.deployments[0].api_key: ")
    assert "os.environ/" in error


def test_missing_secret_names_the_deployment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: m
    deployments: [{provider: gemini, model: gemini-2.5-flash, api_key: os.environ/NOPE_KEY}]
""",
    )
    assert errors_of(path) == [
        "models.m.deployments[0].api_key: environment variable NOPE_KEY is not set"
    ]


def test_provider_requirements(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: a
    deployments: [{provider: azure, model: d, api_key: os.environ/OPENAI_API_KEY}]
  - name: b
    deployments: [{provider: openai_compatible, model: llama}]
  - name: a
    deployments: [{provider: vertex, model: x}]
""",
    )
    errors = errors_of(path)
    assert any("models.a.deployments[0]: provider 'azure' needs api_base" in e for e in errors)
    assert any("needs api_base" in e and "models.b" in e for e in errors)
    assert any("models.a.deployments[0].provider" in e for e in errors)


AWS_ENV = {
    **ENV,
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE000000001",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value-0000000000",
    "AWS_SESSION_TOKEN": "aws-session-token-000000000",
}


def test_bedrock_deployment_resolves_aws_credentials(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: claude
    deployments:
      - provider: bedrock
        model: anthropic.claude-3-5-sonnet-20240620-v1:0
        aws_region: eu-central-1
        aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
        aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
        aws_session_token: os.environ/AWS_SESSION_TOKEN
  - name: keyed
    deployments:
      - {provider: bedrock, model: m, aws_region: us-west-2, api_key: os.environ/OPENAI_API_KEY}
""",
    )
    loaded = load_models(path, AWS_ENV)
    dep = loaded.groups[0].deployments[0]
    assert dep.api_base == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    assert dep.aws is not None
    assert dep.aws.region == "eu-central-1"
    assert dep.aws.secret_access_key == Secret("aws-secret-value-0000000000")
    assert dep.aws.session_token == Secret("aws-session-token-000000000")
    assert "aws-secret" not in repr(dep)
    for value in (
        "AKIAEXAMPLE000000001",
        "aws-secret-value-0000000000",
        "aws-session-token-000000000",
    ):
        assert value in loaded.secrets()  # registered with the redactor
    keyed = loaded.groups[1].deployments[0]
    assert keyed.aws is None
    assert keyed.api_base == "https://bedrock-runtime.us-west-2.amazonaws.com"


def test_bedrock_requirements(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: a
    deployments: [{provider: bedrock, model: m, aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID,
                   aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY}]
  - name: b
    deployments: [{provider: bedrock, model: m, aws_region: us-east-1,
                   aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID}]
  - name: c
    deployments: [{provider: bedrock, model: m, aws_region: us-east-1}]
  - name: d
    deployments: [{provider: openai, model: m, api_key: os.environ/OPENAI_API_KEY,
                   aws_region: us-east-1}]
  - name: e
    deployments: [{provider: bedrock, model: m, aws_region: Virginia,
                   api_key: os.environ/OPENAI_API_KEY}]
  - name: f
    deployments: [{provider: bedrock, model: m, aws_region: us-east-1,
                   aws_access_key_id: AKIAINLINE, aws_secret_access_key: inline}]
""",
    )
    errors = errors_of(path, AWS_ENV)
    assert any(e.startswith("models.a.deployments[0]") and "needs aws_region" in e for e in errors)
    assert any(e.startswith("models.b") and "go together" in e for e in errors)
    assert any(e.startswith("models.c") and "or api_key" in e for e in errors)
    assert any(
        e.startswith("models.d") and "applies to provider 'bedrock' only" in e for e in errors
    )
    assert any(e.startswith("models.e.deployments[0].aws_region") for e in errors)
    assert any(e.startswith("models.f.deployments[0].aws_access_key_id") for e in errors)
    assert any(e.startswith("models.f.deployments[0].aws_secret_access_key") for e in errors)


def test_missing_aws_variable_names_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
models:
  - name: m
    deployments: [{provider: bedrock, model: m, aws_region: us-east-1,
                   aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID,
                   aws_secret_access_key: os.environ/NOPE_SECRET}]
""",
    )
    assert errors_of(path, AWS_ENV) == [
        "models.m.deployments[0].aws_secret_access_key: environment variable NOPE_SECRET is not set"
    ]


def test_litellm_bedrock_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
model_list:
  - model_name: claude
    litellm_params:
      model: bedrock/converse/anthropic.claude-3-5-sonnet-20240620-v1:0
      aws_region_name: us-west-2
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
""",
    )
    loaded = load_models(path, AWS_ENV)
    dep = loaded.groups[0].deployments[0]
    assert (dep.provider, dep.model) == ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert dep.aws is not None
    assert dep.aws.region == "us-west-2"
    assert not loaded.notes


def test_litellm_config_accepted_unchanged(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/OPENAI_API_KEY
      rpm: 600
  - model_name: gpt-4o
    litellm_params:
      model: azure/my-gpt4o
      api_base: https://example.openai.azure.com
      api_key: os.environ/OPENAI_API_KEY
      api_version: "2024-06-01"
  - model_name: local
    litellm_params: {model: ollama/llama3}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4-5, api_key: os.environ/ANTHROPIC_API_KEY}
litellm_settings: {drop_params: true}
""",
    )
    loaded = load_models(path, ENV)
    by_name = {g.name: g for g in loaded.groups}
    assert [d.provider for d in by_name["gpt-4o"].deployments] == ["openai", "azure"]
    assert by_name["gpt-4o"].deployments[1].api_version == "2024-06-01"
    assert by_name["local"].deployments[0].provider == "openai_compatible"
    assert by_name["local"].deployments[0].api_base == "http://localhost:11434/v1"
    assert by_name["claude"].deployments[0].provider == "anthropic"
    assert any("rpm" in note for note in loaded.notes)
    assert any("litellm_settings" in note for note in loaded.notes)


def test_defaults_from_environment() -> None:
    loaded = load_models(
        None,
        {
            "GEMINI_API_KEY": "AIza-test",
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
        },
    )
    names = [g.name for g in loaded.groups]
    assert "gemini-2.5-flash" in names
    assert "gpt-4o-mini" in names  # the Azure deployment, named after itself
    assert {g.deployments[0].provider for g in loaded.groups} == {"gemini", "azure"}


def test_no_keys_means_no_models() -> None:
    assert load_models(None, {}).groups == []


def test_hourly_usage_retention_is_for_ever_or_at_least_eight_days() -> None:
    """The overview's week and a report's part days read hourly rollups: a shorter
    retention would cut them, so it is refused."""
    assert Settings().usage_hourly_retention_days == 90
    assert Settings(usage_hourly_retention_days=0).usage_hourly_retention_days == 0
    assert Settings(usage_hourly_retention_days=8).usage_hourly_retention_days == 8
    with pytest.raises(pydantic.ValidationError, match="at least 8 days"):
        Settings(usage_hourly_retention_days=2)


def test_an_answer_is_not_called_lost_before_its_heartbeat_could_come() -> None:
    """A staleness limit no longer than the heartbeat would save answers as lost while
    their instance is still generating them: refused at start-up."""
    settings = Settings()
    assert settings.chat_generation_stale_seconds > settings.chat_generation_heartbeat_seconds
    Settings(chat_generation_heartbeat_seconds=0.2, chat_generation_stale_seconds=1)
    with pytest.raises(pydantic.ValidationError, match="longer than"):
        Settings(chat_generation_heartbeat_seconds=5, chat_generation_stale_seconds=5)


_SSO = """
models: []
sso:
  providers:
    - name: corp
      issuer: https://id.example.com/
      client_id: parley
      client_secret: {secret}
"""


def test_an_sso_provider_is_read_with_its_secret_by_reference(tmp_path: Path) -> None:
    path = tmp_path / "parley.yaml"
    path.write_text(_SSO.format(secret="os.environ/OIDC_SECRET"))
    loaded = load_models(path, {"OIDC_SECRET": "s3cret-value"})
    assert loaded.sso is not None
    provider = loaded.sso.by_name["corp"]
    assert provider.config.issuer == "https://id.example.com"
    assert provider.label == "corp"
    assert "s3cret-value" not in repr(provider)
    assert "s3cret-value" in loaded.secrets()  # redacted from logs and errors


def test_an_sso_secret_inline_or_unset_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "parley.yaml"
    path.write_text(_SSO.format(secret="plain-secret"))
    with pytest.raises(ConfigError) as inline:
        load_models(path, {})
    assert "sso.providers[0].client_secret" in str(inline.value)
    assert "plain-secret" not in str(inline.value)
    path.write_text(_SSO.format(secret="os.environ/OIDC_SECRET"))
    with pytest.raises(ConfigError) as unset:
        load_models(path, {})
    assert "OIDC_SECRET" in str(unset.value)
