"""The LLM pipeline: route -> admit -> cache -> call -> account, with no HTTP framework.

``pipeline`` joins the rooms below for one request (``responses`` runs ``/v1/responses``
through it: passed through to OpenAI deployments, translated for the others);
``registry`` holds a deployment's provider and client; ``params`` decides what a provider
cannot honour; ``batching`` is the micro-batcher that ``embeddings`` (``/v1/embeddings``
upstream) and the cache's embedders share; ``client_base`` guards a client-chosen
upstream. The rooms: ``routing/`` (which deployment, and what happens when it fails),
``cache/`` (answers from earlier answers) and ``accounting/`` (who is asking, limits,
budgets, cost, usage). Imports ``providers``, ``schema``, ``state``, ``store``, ``bus``,
``config``, ``errors`` and ``observability``; never ``api``, ``chat``, ``identity``,
FastAPI or Starlette.
"""
