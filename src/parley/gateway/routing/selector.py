"""Virtual models: tiered ``auto`` routing and A/B experiments, resolved to a real model
group before admission and routing.

Tiered: a classifier reads the request and says fast, balanced or premium; the caller's
key may cap the tier (``tier`` on the key), and schedule windows may cap it too (the
cheaper tier at peak hours). The built-in heuristic weighs prompt length, requested
context, code, reasoning or analysis cues, and tools; any ``package.module:function``
taking ``(ChatRequest, prompt_tokens)`` and returning a tier can replace it.

Experiments: a variant is picked by weight from a hash of the user (the key, else the
request's ``user`` field, else the client address), so one user always sees one variant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from parley.config.models import TIER_ORDER, ExperimentConfig, Tier, TieredConfig
from parley.errors import ConfigError
from parley.gateway.accounting import tokens
from parley.gateway.accounting.caller import Caller
from parley.observability.metrics import Metrics
from parley.schema.chat import ChatRequest, text_of

Classifier = Callable[[ChatRequest, int], Tier]

_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+|\bfunction\b|\bimport \w+|#include|\bSELECT\b.+\bFROM\b|=>|;\s*$",
    re.MULTILINE | re.IGNORECASE,
)
_REASONING = re.compile(
    r"\b(prove|proof|derive|step[- ]by[- ]step|analy[sz]e|analysis|compare|trade-?offs?|"
    r"evaluate|critique|reason(ing)?|why does|explain why|design|architect|optimi[sz]e|"
    r"strategy|plan)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Selection:
    group: str
    tier: Tier | None = None
    variant: str | None = None
    reason: str = ""


def heuristic(balanced_tokens: int, premium_tokens: int) -> Classifier:
    def classify(request: ChatRequest, prompt_tokens: int) -> Tier:
        text = "\n".join(text_of(m.content) for m in request.messages if m.content)
        context = prompt_tokens + (request.output_limit or 0)
        cues = len({m.group(0).lower() for m in _REASONING.finditer(text)})
        code = bool(_CODE.search(text))
        if context >= premium_tokens or cues >= 2 or (code and cues >= 1):
            return "premium"
        if context >= balanced_tokens or code or cues == 1 or request.tools:
            return "balanced"
        return "fast"

    return classify


def load_classifier(config: TieredConfig) -> Classifier:
    if config.classifier == "heuristic":
        return heuristic(config.balanced_tokens, config.premium_tokens)
    module_name, _, attr = config.classifier.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            [f"tiered.{config.name}.classifier: cannot import {config.classifier!r} ({exc})"]
        ) from exc
    if not callable(found):
        raise ConfigError(
            [f"tiered.{config.name}.classifier: {config.classifier!r} is not callable"]
        )
    classifier: Classifier = found
    return classifier


def cap(tier: Tier, ceiling: str | None) -> Tier:
    if ceiling not in TIER_ORDER:
        return tier
    return min(tier, ceiling, key=TIER_ORDER.index)


class Selector:
    def __init__(
        self,
        tiered: list[TieredConfig],
        experiments: list[ExperimentConfig],
        metrics: Metrics,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._tiered = {t.name: (t, load_classifier(t)) for t in tiered}
        self._experiments = {e.name: e for e in experiments}
        self._metrics = metrics
        self._clock = clock

    @property
    def names(self) -> list[str]:
        return [*self._tiered, *self._experiments]

    def is_virtual(self, name: str) -> bool:
        return name in self._tiered or name in self._experiments

    def select(self, request: ChatRequest, caller: Caller) -> Selection | None:
        tiered = self._tiered.get(request.model)
        if tiered is not None:
            return self._tier(request, caller, *tiered)
        experiment = self._experiments.get(request.model)
        if experiment is not None:
            return self._variant(experiment, caller, request.user)
        return None

    def _tier(
        self, request: ChatRequest, caller: Caller, config: TieredConfig, classify: Classifier
    ) -> Selection:
        wanted = classify(request, tokens.count_prompt(request))
        tier, reasons = wanted, [f"classified {wanted}"]
        capped = cap(tier, caller.tier)
        if capped != tier:
            tier = capped
            reasons.append(f"key capped at {caller.tier}")
        now = self._clock()
        for window in config.schedule:
            if _in_window(now, window.days, window.start, window.end):
                capped = cap(tier, window.max_tier)
                if capped != tier:
                    tier = capped
                    reasons.append(
                        f"schedule {window.start}-{window.end} caps at {window.max_tier}"
                    )
        self._metrics.tier_decisions.labels(config.name, tier).inc()
        return Selection(config.tiers[tier], tier=tier, reason="; ".join(reasons))

    def _variant(self, experiment: ExperimentConfig, caller: Caller, user: str | None) -> Selection:
        who = caller.key_id or caller.user_id or user or caller.ip or ""
        digest = hashlib.sha256(f"{experiment.name}:{who}".encode()).digest()
        point = (
            int.from_bytes(digest[:8], "big") / 2**64 * sum(v.weight for v in experiment.variants)
        )
        for variant in experiment.variants:
            point -= variant.weight
            if point < 0:
                break
        self._metrics.experiment_requests.labels(experiment.name, variant.group).inc()
        return Selection(
            variant.group, variant=variant.group, reason=f"experiment {experiment.name}"
        )


def _in_window(now: dt.datetime, days: Sequence[str], start: str, end: str) -> bool:
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]
    if day not in days:
        return False
    minute = now.hour * 60 + now.minute
    first = int(start[:2]) * 60 + int(start[3:])
    last = int(end[:2]) * 60 + int(end[3:])
    if first <= last:
        return first <= minute < last
    return minute >= first or minute < last  # a window across midnight
