"""Which deployment answers, and what happens when one fails.

Strategies (``router``), tiered auto routing and experiments (``selector``), circuit
breakers (``breaker``), passive health (``health``) and active probes (``probes``), the
concurrency gate and priority queue (``admission``), and retries, fallbacks and deadlines
(``resilience``). May import ``parley.gateway.accounting`` (prices for cost-aware routing),
``providers``, ``schema``, ``state``, ``config``, ``errors`` and ``observability``; never the
cache or the pipeline.
"""
