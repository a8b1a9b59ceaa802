"""What a PromQL expression reads, and what Parley exports, so every rule, dashboard and
autoscaling query can be held to metrics that exist (a renamed metric would otherwise
leave an alert that never fires and a graph that stays empty, with nothing failing).

The expression reader is deliberately small: it blanks out strings, label matchers,
ranges, grouping clauses and template placeholders, and what is left that is neither a
function, an operator nor a number is a metric name. Label matchers are returned beside
the name they qualify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.metrics import MetricWrapperBase

from parley.observability.metrics import Metrics

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "sum", "min", "max", "avg", "count", "stddev",
    "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
}  # fmt: skip
_PLACEHOLDER = re.compile(r"<<[^>]*>>|\$\{[^}]*\}|\$\w+")  # prometheus-adapter, Grafana
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SELECTOR = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_IDENT = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*)")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")

# Labels Prometheus itself attaches to every scraped series (target labels), as the
# shipped scrape configurations set them.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "node"}
SYNTHETIC = {"up": set[str]()}  # series Prometheus makes for each scrape


@dataclass(frozen=True)
class Use:
    metric: str
    labels: frozenset[str]


def uses(expression: str) -> list[Use]:
    """Every metric an expression reads, with the label names it matches on."""
    text = _PLACEHOLDER.sub(" ", expression)
    strings_blanked = _STRING.sub('""', text)
    found: list[Use] = []
    for match in _SELECTOR.finditer(strings_blanked):
        # strings are blanked first, so a label value never reads as a matcher
        labels = frozenset(_MATCHER.findall(match.group(2)))
        if match.group(1) and match.group(1) not in _KEYWORDS:
            found.append(Use(match.group(1), labels))
    rest = _SELECTOR.sub(" ", strings_blanked)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)
    rest = _GROUPING.sub(" ", rest)
    for match in _IDENT.finditer(rest):
        name = match.group(1)
        after = rest[match.end() :].lstrip()
        if name.lower() in _KEYWORDS or after.startswith("("):
            continue
        found.append(Use(name, frozenset()))
    return found


def exported() -> dict[str, set[str]]:
    """Series names in Parley's ``/metrics`` (``# TYPE`` lines of a fresh registry's
    exposition, suffixes added as the text format adds them) and each one's label names."""
    metrics = Metrics()
    labels_of = {
        wrapper._name: set(wrapper._labelnames)  # prometheus_client keeps them private
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    names: dict[str, set[str]] = dict(SYNTHETIC)
    for line in metrics.render().decode().splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, family, kind = line.split(" ")
        base = family.removesuffix("_total") if kind == "counter" else family
        labels = labels_of.get(base, set())
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(kind, [""])
        for suffix in suffixes:
            names[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def unknown(expression: str, known: dict[str, set[str]]) -> list[str]:
    """What in ``expression`` Parley does not export: metric names, or label names a
    metric does not carry. Empty when every reference is real."""
    problems = []
    for use in uses(expression):
        if use.metric not in known:
            problems.append(f"no metric {use.metric!r}")
            continue
        extra = use.labels - known[use.metric] - TARGET_LABELS
        if extra:
            problems.append(f"{use.metric} has no label {sorted(extra)}")
    return problems
