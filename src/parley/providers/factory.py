"""Build the adapter for a deployment, on the shared upstream pool."""

from __future__ import annotations

from parley.config.loader import Deployment
from parley.providers.anthropic import AnthropicProvider
from parley.providers.azure import AzureOpenAIProvider
from parley.providers.base import Provider
from parley.providers.gemini import GeminiProvider
from parley.providers.http import UpstreamClient, UpstreamPool
from parley.providers.openai import OpenAIProvider
from parley.providers.openai_compatible import OpenAICompatibleProvider

_ADAPTERS: dict[str, type[OpenAIProvider] | type[AnthropicProvider] | type[GeminiProvider]] = {
    "openai": OpenAIProvider,
    "azure": AzureOpenAIProvider,
    "openai_compatible": OpenAICompatibleProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
}


def build_provider(deployment: Deployment, pool: UpstreamPool) -> Provider:
    client = pool.client_for(
        deployment.api_base,
        deployment.timeout,
        deployment.max_connections,
        deployment.label,
        deployment.proxy,
    )
    if deployment.provider == "bedrock":
        return _bedrock(deployment, client)
    return _ADAPTERS[deployment.provider](deployment, client)


def _bedrock(deployment: Deployment, client: UpstreamClient) -> Provider:
    """Imported here, not above: Bedrock's signer and stream parser are botocore's, which
    takes a noticeable part of a second to import, paid only where Bedrock is configured."""
    from parley.providers.bedrock import BedrockProvider  # noqa: PLC0415 (see docstring)

    return BedrockProvider(deployment, client)
