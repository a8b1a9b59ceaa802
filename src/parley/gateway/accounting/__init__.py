"""Who is asking and what they may spend: the caller, its limits, budgets, cost and usage.

The caller's identity and limits (``caller``), rate limits and budget reservations
(``limits``, ``budgets``), the policy that wraps every upstream call (``policy``), prices
(``cost``), token counting (``tokens``) and the usage records written off the hot path
(``usage``). May import ``schema``, ``state``, ``config``, ``errors`` and
``observability``; never routing, the cache or the pipeline.
"""
