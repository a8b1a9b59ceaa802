"""Answering from earlier answers: the exact cache and the semantic one.

Keys and namespaces (``keys``), the two-level store with single flight (``store``), the
cache's step in the pipeline (``step``), stream <-> completion replay (``replay``), the
semantic cache (``semantic``, ``index``, ``agreement``, ``embedders``, ``vectors``). May
import ``parley.gateway.accounting`` (who is asking decides the namespace),
``parley.gateway.batching``, ``schema``, ``state``, ``store``, ``config``, ``errors`` and
``observability``; never routing or the pipeline.
"""
