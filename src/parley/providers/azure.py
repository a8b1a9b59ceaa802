"""Azure OpenAI: the OpenAI wire format under per-deployment URLs with ``api-version``.

Authenticates with the ``api-key`` header, or with a Microsoft Entra ID bearer token when
the deployment sets ``azure_ad_token`` (the token wins when both are configured).
"""

from __future__ import annotations

from urllib.parse import quote

from parley.providers.openai import OpenAIProvider


class AzureOpenAIProvider(OpenAIProvider):
    speaks_responses: bool = False  # Chat Completions only, through Parley's translation

    def _url(self, operation: str) -> str:
        deployment = quote(self.deployment.model, safe="")
        return (
            f"{self._base}/openai/deployments/{deployment}/{operation}"
            f"?api-version={quote(self.deployment.api_version, safe='')}"
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **self.deployment.extra_headers}
        if self.deployment.azure_ad_token is not None:
            headers["Authorization"] = f"Bearer {self.deployment.azure_ad_token.reveal()}"
        elif self.deployment.api_key is not None:
            headers["api-key"] = self.deployment.api_key.reveal()
        return headers
