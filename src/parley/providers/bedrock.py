"""Amazon Bedrock's Converse API (``POST /model/{modelId}/converse`` and
``/converse-stream``), translated to and from OpenAI's shapes.

Requests are signed with SigV4 (``sigv4.py``, botocore's signer) for the deployment's
region and the ``bedrock`` service, or carry a Bedrock API key as a bearer token. The model
id is one URL path segment, percent-encoded as the AWS SDKs encode it (``:`` in
``anthropic.claude-...-v1:0``, ``/`` in ARNs); the signature covers that encoded path.

Notable translations: system and developer messages become ``system`` text blocks; tool
results become ``toolResult`` blocks in a user turn; consecutive same-role turns merge (the
Converse API wants user and assistant to alternate); images must be base64 ``data:`` URLs
(``bytes``) or ``s3://`` locations, since Bedrock fetches no URL and neither does Parley
for it; file parts become ``document`` blocks (``bedrock_documents.py``), and those Bedrock
cannot take (by URL, by file id, a format outside its nine) are ``refused_parts``, refused
or dropped by the gateway as ``drop_params`` decides; a tool message's ``is_error`` is the
``toolResult``'s ``status: "error"``; JSON mode is a forced tool whose input schema is the
requested schema, its input returned as the message text (as for Anthropic). Bedrock has
no ``none`` tool choice: with ``tool_choice: none`` the tools are not declared, unless the
conversation already holds tool turns, which Bedrock accepts only with a ``toolConfig``
(then the tools stay declared and the choice is the model's). A conversation with tool
turns but no ``tools`` declares the tools it used, with an open schema, for the same reason.

Prompt caching: each ``cache_control`` breakpoint (on a text, image or file part, a system
part, a tool message, a tool) becomes a ``cachePoint`` block right after the block it marks, in
``messages[].content``, ``system`` or ``toolConfig.tools``; cache reads and writes come
back in ``usage``. Thinking, for Claude models: ``thinking`` (or ``reasoning_effort`` as a
budget, ``thinking.py``, the same table as for Anthropic) goes in
``additionalModelRequestFields.thinking``; ``reasoningContent`` comes back as thinking
blocks with their signatures (or redacted content), and an assistant turn's thinking
blocks go back as ``reasoningContent`` ahead of its tool use. A model id that names
another family refuses ``thinking`` and ``reasoning_effort`` (``claude_thinking_allowed``).

The wire format (bodies, usage, stop reasons, AWS error answers: ``{"message"}`` with the
name in ``x-amzn-ErrorType``) is ``bedrock_convert.py``; the stream's translator is
``bedrock_stream.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import quote

from parley.config.loader import Deployment
from parley.errors import InvalidRequest
from parley.providers import bedrock_documents
from parley.providers.base import ChunkStream, RefusedPart, decode_json, json_body, unexpected
from parley.providers.bedrock_convert import (
    bedrock_to_parley_completion,
    json_mode,
    raise_for_bedrock_status,
    to_converse,
)
from parley.providers.bedrock_stream import StreamTranslator
from parley.providers.http import UpstreamClient
from parley.providers.sigv4 import SigV4Signer
from parley.schema.chat import (
    OPENAI_ONLY_PARAMS,
    ChatCompletion,
    ChatRequest,
    EmbeddingRequest,
    EmbeddingResult,
)

STREAM_CONTENT_TYPE = "application/vnd.amazon.eventstream"


def claude_thinking_allowed(model: str) -> bool:
    """Whether ``model`` may be a Claude model, which takes Claude's ``thinking`` object.
    Ids and ARNs of foundation models and inference profiles name the model; an ARN that
    names none (an application inference profile, provisioned throughput) is given the
    benefit of the doubt, and Bedrock judges."""
    lowered = model.lower()
    if "claude" in lowered:
        return True
    return lowered.startswith("arn:") and not any(
        kind in lowered for kind in ("foundation-model/", ":inference-profile/")
    )


class BedrockProvider:
    # top_k lives in each model family's own additionalModelRequestFields: not translated.
    # reasoning_effort is a thinking budget for Claude models (see __init__ for the others).
    unsupported_params: frozenset[str] = (
        frozenset(
            {
                "n",
                "seed",
                "logprobs",
                "top_logprobs",
                "presence_penalty",
                "frequency_penalty",
                "logit_bias",
                "parallel_tool_calls",
                "top_k",
            }
        )
        | OPENAI_ONLY_PARAMS
    ) - {"reasoning_effort"}
    forwards_extra: bool = False
    signed_thinking: bool = True  # Claude's, through Converse's reasoningContent

    def __init__(self, deployment: Deployment, client: UpstreamClient) -> None:
        if not claude_thinking_allowed(deployment.model):
            # Claude's thinking object would reach Nova, Llama, ... as an unknown field.
            self.unsupported_params = type(self).unsupported_params | {
                "thinking",
                "reasoning_effort",
            }
        self.deployment = deployment
        self._client = client
        self._signer = SigV4Signer(deployment.aws) if deployment.aws is not None else None
        model = quote(deployment.model, safe="")  # the AWS SDKs' encoding of a URI label
        self._url = f"{deployment.api_base}/model/{model}/converse"
        self._stream_url = f"{self._url}-stream"

    def _headers(self, url: str, body: bytes, accept: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": accept,
            **self.deployment.extra_headers,
        }
        if self._signer is not None:
            return self._signer.sign(url, headers, body)
        if self.deployment.api_key is not None:
            headers["Authorization"] = f"Bearer {self.deployment.api_key.reveal()}"
        return headers

    def refused_parts(self, request: ChatRequest) -> list[RefusedPart]:
        """File parts Converse cannot take (``gateway/params.py`` refuses or drops them)."""
        return bedrock_documents.refused_parts(request)

    async def complete(self, request: ChatRequest) -> ChatCompletion:
        body = json_body(to_converse(request))
        resp = await self._client.post(
            self._url, self._headers(self._url, body, "application/json"), body
        )
        deployment = self._client.deployment
        raise_for_bedrock_status(resp.status, resp.headers, resp.body, deployment)
        data = decode_json(resp.body, deployment)
        with unexpected(deployment, "an unexpected response"):
            return bedrock_to_parley_completion(
                data, self.deployment.model, json_mode=json_mode(request)
            )

    @contextlib.asynccontextmanager
    async def open_stream(self, request: ChatRequest) -> AsyncIterator[ChunkStream]:
        body = json_body(to_converse(request))
        url = self._stream_url
        headers = self._headers(url, body, STREAM_CONTENT_TYPE)
        async with self._client.open_stream(url, headers, body) as up:
            if up.status >= 400:
                raise_for_bedrock_status(up.status, up.headers, await up.read_all(), up.deployment)
            translator = StreamTranslator(up, self.deployment.model, json_mode=json_mode(request))
            yield translator.chunks()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        raise InvalidRequest(
            f"model {request.model!r} is served by Bedrock's Converse API, which has no "
            "embeddings operation",
            param="model",
            code="model_not_supported",
        )
