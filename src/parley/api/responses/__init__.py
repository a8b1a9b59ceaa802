"""The OpenAI Responses API inbound (``/v1/responses``): ``translate`` (request to Parley's
canonical ``ChatRequest``), ``render`` (answers to Response objects), ``events`` (the
streaming event sequence), ``routes`` (HTTP, and the stored responses)."""
