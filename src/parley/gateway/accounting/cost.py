"""What a call costs, in integer nano-dollars (1e-9 USD), so spend sums never drift.

Prices come from the deployment's ``price:`` in the config file, else from the built-in
table below (list prices in USD per million tokens, as published by each provider; they
change, so production configs should set ``price:`` explicitly). A model found nowhere
costs 0 and start-up logs a note naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from parley.config.loader import Deployment, ModelGroup
from parley.schema.chat import Usage

# model: (input, output, cached input) USD per million tokens
_BUILTIN: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 10.00, 1.25),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4.1": (2.00, 8.00, 0.50),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "o4-mini": (1.10, 4.40, 0.275),
    "text-embedding-3-small": (0.02, 0.0, 0.02),
    "text-embedding-3-large": (0.13, 0.0, 0.13),
    "claude-opus-4-1": (15.00, 75.00, 1.50),
    "claude-sonnet-4-5": (3.00, 15.00, 0.30),
    "claude-haiku-4-5": (1.00, 5.00, 0.10),
    "gemini-2.5-pro": (1.25, 10.00, 0.31),
    "gemini-2.5-flash": (0.30, 2.50, 0.075),
    "gemini-embedding-001": (0.15, 0.0, 0.15),
}
_NUSD_PER_USD_PER_MTOK = 1000.0  # $1 per 1e6 tokens = 1e9 nUSD / 1e6 tokens


@dataclass(frozen=True, slots=True)
class Price:
    """nano-dollars per token."""

    input: float
    output: float
    cached_input: float

    def cost(self, usage: Usage, cached_tokens: int = 0) -> int:
        cached = min(cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return round(
            fresh * self.input + cached * self.cached_input + usage.completion_tokens * self.output
        )

    def estimate(self, prompt_tokens: int, max_completion: int) -> int:
        return round(prompt_tokens * self.input + max_completion * self.output)


FREE = Price(0.0, 0.0, 0.0)


def price_of(deployment: Deployment) -> Price | None:
    """The deployment's price, or None when neither the config nor the table knows it."""
    if deployment.price is not None:
        p = deployment.price
        cached = (
            p.cached_input_per_mtok if p.cached_input_per_mtok is not None else p.input_per_mtok
        )
        return Price(
            p.input_per_mtok * _NUSD_PER_USD_PER_MTOK,
            p.output_per_mtok * _NUSD_PER_USD_PER_MTOK,
            cached * _NUSD_PER_USD_PER_MTOK,
        )
    known = _lookup(deployment.model)
    if known is None:
        return None
    return Price(*(v * _NUSD_PER_USD_PER_MTOK for v in known))


def _lookup(model: str) -> tuple[float, float, float] | None:
    """Exact name, else the longest known name the model starts with (dated snapshots such
    as ``gpt-4o-2024-08-06`` price like their family)."""
    if model in _BUILTIN:
        return _BUILTIN[model]
    matches = [name for name in _BUILTIN if model.startswith(name)]
    return _BUILTIN[max(matches, key=len)] if matches else None


def group_ceiling(group: ModelGroup) -> Price:
    """The dearest deployment's price: what a budget reserves before the router picks."""
    prices = [price_of(d) or FREE for d in group.deployments]
    return Price(
        max(p.input for p in prices),
        max(p.output for p in prices),
        max(p.cached_input for p in prices),
    )


def usd(nusd: int) -> float:
    return nusd / 1e9


def nusd(usd_amount: float) -> int:
    return round(usd_amount * 1e9)
