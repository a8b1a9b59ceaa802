"""Accept a LiteLLM proxy config (``model_list``) unchanged, so teams move over with their file.

Only the keys Parley understands are carried over; everything else LiteLLM-specific is
reported as a note (not an error), so the same file keeps working in both while migrating.
"""

from __future__ import annotations

from typing import Any

_PROVIDER_PREFIXES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure",
    "azure_ai": "openai_compatible",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "hosted_vllm": "openai_compatible",
    "vllm": "openai_compatible",
    "openai_like": "openai_compatible",
    "ollama": "openai_compatible",
    "ollama_chat": "openai_compatible",
    "llamafile": "openai_compatible",
    "lm_studio": "openai_compatible",
    "bedrock": "bedrock",
}
_CARRIED = {
    "model",
    "api_key",
    "api_base",
    "api_version",
    "azure_ad_token",
    "timeout",
    "extra_headers",
    *("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name"),
}
_AWS_KEYS = {
    "aws_access_key_id": "aws_access_key_id",
    "aws_secret_access_key": "aws_secret_access_key",
    "aws_session_token": "aws_session_token",
    "aws_region_name": "aws_region",
}
"""LiteLLM's Bedrock keys -> Parley's."""
_OLLAMA_DEFAULT = "http://localhost:11434"


def is_litellm_config(data: dict[str, Any]) -> bool:
    return "model_list" in data and "models" not in data


def convert(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return (Parley models-file dict, notes about what was not carried over)."""
    notes: list[str] = []
    groups: dict[str, dict[str, Any]] = {}
    model_list = data.get("model_list")
    if not isinstance(model_list, list):
        raise ValueError("model_list: must be a list")
    for index, entry in enumerate(model_list):
        where = f"model_list[{index}]"
        if not isinstance(entry, dict) or "model_name" not in entry:
            raise ValueError(f"{where}: needs model_name and litellm_params")
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            raise ValueError(f"{where}.litellm_params.model: required")
        deployment = _deployment(params, where, notes)
        group = groups.setdefault(
            str(entry["model_name"]), {"name": str(entry["model_name"]), "deployments": []}
        )
        group["deployments"].append(deployment)
    for key in data:
        if key != "model_list":
            notes.append(f"{key}: LiteLLM setting not used by Parley (ignored)")
    return {"models": list(groups.values())}, notes


def _deployment(params: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    prefix, _, upstream_model = params["model"].partition("/")
    if not upstream_model:
        # LiteLLM guesses the provider from a bare model name; OpenAI is its default guess.
        prefix, upstream_model = "openai", params["model"]
    provider = _PROVIDER_PREFIXES.get(prefix)
    if provider is None:
        raise ValueError(f"{where}.litellm_params.model: provider {prefix!r} is not supported")
    result: dict[str, Any] = {"provider": provider, "model": upstream_model}
    if provider == "openai" and params.get("api_base"):
        # LiteLLM's 'openai/<model>' with a custom base is how it reaches compatible servers.
        result["provider"] = "openai_compatible"
    for key in ("api_key", "api_base", "api_version", "azure_ad_token", "extra_headers"):
        if params.get(key) is not None:
            result[key] = params[key]
    if provider == "bedrock":
        # 'bedrock/converse/<id>' picks LiteLLM's Converse route, the only one Parley has.
        result["model"] = upstream_model.removeprefix("converse/")
        for key, ours in _AWS_KEYS.items():
            if params.get(key) is not None:
                result[ours] = params[key]
    if prefix in ("ollama", "ollama_chat"):
        base = str(params.get("api_base") or _OLLAMA_DEFAULT).rstrip("/")
        result["api_base"] = base if base.endswith("/v1") else base + "/v1"
    if isinstance(params.get("timeout"), int | float):
        result["timeout"] = {"total": float(params["timeout"])}
    for key in params:
        if key not in _CARRIED:
            notes.append(f"{where}.litellm_params.{key}: not used by Parley yet (ignored)")
    return result
