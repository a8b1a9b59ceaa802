"""The canonical wire types every layer speaks: requests, responses, chunks and usage.

They sit below both ``providers/`` and ``gateway/`` so that a provider adapter translates to
and from this vocabulary without knowing the gateway exists, and inbound protocols added
later (Anthropic Messages, OpenAI Responses) meet the same types. Imports only msgspec and
the standard library; nothing in Parley sits below it but ``errors`` and ``config``.
"""
