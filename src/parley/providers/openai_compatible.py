"""Any server speaking the OpenAI API at its own base URL: vLLM, Ollama (``/v1``), llama.cpp.

Same wire format as OpenAI; the key is optional (local servers often run without one).
"""

from __future__ import annotations

from parley.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    """Distinct type so logs, metrics and capability checks can tell the two apart."""
