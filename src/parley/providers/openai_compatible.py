"""Any server speaking the OpenAI API at its own base URL: vLLM, Ollama (``/v1``), llama.cpp.

Same wire format as OpenAI; the key is optional (local servers often run without one).
"""

from __future__ import annotations

from parley.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    """Distinct type so logs, metrics and capability checks can tell the two apart.

    Unlike OpenAI, these servers take sampling parameters of their own (``top_k``,
    ``min_p``, ``repeat_penalty``, ...), sent as ``extra_body`` by the SDKs: unknown
    top-level fields pass through, unless the deployment lists them in ``refused_params``.
    """

    unsupported_params: frozenset[str] = frozenset()
    forwards_extra: bool = True
    speaks_responses: bool = False
