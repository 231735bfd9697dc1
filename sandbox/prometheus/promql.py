"""The PromQL subset the stand-in evaluates, instant queries only:

    METRIC{label="v", label=~"a|b", label!="v"}            instant vector (latest sample ≤ 5m old)
    max_over_time(SELECTOR[RANGE]) / avg_over_time / min_over_time
    max by (l1, l2) (EXPR) / avg by (...) / min by (...) / sum by (...) / count by (...)
    max(EXPR) / count(EXPR) ...                              aggregation without grouping

RANGE is a Prometheus duration (30s, 5m, 12h, 1d). Anything else is a 400 `bad_data`, as
Prometheus answers an unparsable query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]
Series = dict[Labels, list[tuple[float, float]]]  # labels -> [(timestamp, value)] sorted

LOOKBACK = 300.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGG = re.compile(r"^(max|min|avg|sum|count)\s*(?:by\s*\(([^)]*)\)\s*)?\((.*)\)$", re.S)
_OVER = re.compile(r"^(max|min|avg)_over_time\s*\((.*)\[(\d+[smhdw])\]\s*\)$", re.S)
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?$", re.S)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

_REDUCE: dict[str, Callable[[list[float]], float]] = {
    "max": max,
    "min": min,
    "avg": lambda xs: sum(xs) / len(xs),
    "sum": sum,
    "count": lambda xs: float(len(xs)),
}


class QueryError(ValueError):
    """The query is outside the supported subset or malformed."""


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float


def _seconds(text: str) -> float:
    return float(int(text[:-1]) * _UNITS[text[-1]])


def _matchers(text: str) -> list[tuple[str, str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if not m:
            raise QueryError(f"cannot parse label matchers: {text!r}")
        out.append((m.group(1), m.group(2), m.group(3)))
        pos = m.end()
    return out


def _matches(labels: dict[str, str], matchers: Iterable[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        have = labels.get(name, "")
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have):
            return False
        if op == "!~" and re.fullmatch(value, have):
            return False
    return True


def _select(series: Series, text: str) -> list[tuple[Labels, list[tuple[float, float]]]]:
    m = _SELECTOR.match(text.strip())
    if not m:
        raise QueryError(f"cannot parse selector {text!r}")
    matchers = [("__name__", "=", m.group(1)), *_matchers(m.group(2) or "")]
    return [(labels, points) for labels, points in series.items() if _matches(dict(labels), matchers)]


def evaluate(query: str, series: Series, at: float) -> list[Sample]:
    """Evaluate an instant query at time `at`."""
    query = query.strip()
    agg = _AGG.match(query)
    if agg:
        op, by, inner = agg.group(1), agg.group(2), agg.group(3)
        keys = [k.strip() for k in by.split(",") if k.strip()] if by is not None else []
        groups: dict[Labels, list[float]] = {}
        for sample in evaluate(inner, series, at):
            labels = dict(sample.labels)
            key = tuple((k, labels.get(k, "")) for k in keys)
            groups.setdefault(key, []).append(sample.value)
        return [Sample(key, _REDUCE[op](values)) for key, values in groups.items()]
    over = _OVER.match(query)
    if over:
        op, selector, window = over.group(1), over.group(2), _seconds(over.group(3))
        out = []
        for labels, points in _select(series, selector):
            values = [v for t, v in points if at - window < t <= at]
            if values:
                out.append(Sample(_without_name(labels), _REDUCE[op](values)))
        return out
    out = []
    for labels, points in _select(series, query):
        recent = [(t, v) for t, v in points if at - LOOKBACK < t <= at]
        if recent:
            out.append(Sample(labels, recent[-1][1]))
    return out


def _without_name(labels: Labels) -> Labels:
    return tuple((k, v) for k, v in labels if k != "__name__")
