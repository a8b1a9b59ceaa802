"""The OpenAI Responses API inbound (``/v1/responses``): ``translate`` (request to Parley's
canonical ``ChatRequest``), ``render`` (answers to Response objects), ``events`` (the
streaming event sequence), ``reasoning`` (thinking blocks as reasoning items and their
``encrypted_content``), ``routes`` (HTTP, and the stored responses)."""
