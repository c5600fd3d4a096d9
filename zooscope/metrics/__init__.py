"""zooscope.metrics: what a survey scores per layer, and the noise ceilings that divide the scores.

Each metric is one registered :class:`Metric` (as each model library is one registered
``Source``): it declares what it needs, scores a layer, says what it stores and which
:class:`CeilingMethod` divides it (:mod:`zooscope.metrics.base`). The built-in ones, in the order
summaries and reports list them: ``crsa``, ``versa``, ``encoding_r`` (:mod:`~.crsa`,
:mod:`~.versa`, :mod:`~.encoding_r`; Conwell et al. 2024) and ``predictivity``
(:mod:`~.predictivity`; Brain-Score). Any other module of this package is imported with it, so a
new metric is one file that calls :func:`register_metric`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any

from zooscope.benchmark import Benchmark

# isort: off
# Registration order is the order summaries and reports list metrics in: the published one first.
from zooscope.metrics import crsa, versa, encoding_r, predictivity

# isort: on
from zooscope.metrics.base import (
    NEEDS,
    STORES,
    CeilingMethod,
    LayerContext,
    LayerScores,
    Metric,
    get_metric,
    register_metric,
    registered,
)
from zooscope.metrics.ceilings import GSN_RSA
from zooscope.metrics.predictivity import INTERNAL_CONSISTENCY

__all__ = [
    "GSN_RSA",
    "INTERNAL_CONSISTENCY",
    "NEEDS",
    "STORES",
    "CeilingMethod",
    "LayerContext",
    "LayerScores",
    "Metric",
    "benchmark_kind",
    "ceiling_methods",
    "ceiling_power",
    "crsa",
    "default_metrics",
    "encoding_r",
    "get_metric",
    "metric_names",
    "needed",
    "predictivity",
    "register_metric",
    "registered",
    "storing",
    "versa",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # a metric in a new file registers itself


def metric_names() -> tuple[str, ...]:
    """Names of every registered metric, in registration order."""
    return tuple(metric.name for metric in registered())


def _chosen(names: Iterable[str]) -> list[Metric]:
    """The metrics ``names`` (each checked), in the registry's order."""
    wanted = {get_metric(name).name for name in names}
    return [metric for metric in registered() if metric.name in wanted]


def needed(names: Iterable[str], need: str) -> bool:
    """Whether any of the metrics ``names`` needs ``need`` (one of :data:`NEEDS`)."""
    return any(need in metric.needs for metric in _chosen(names))


def storing(names: Iterable[str], what: str) -> list[Metric]:
    """The metrics among ``names`` that store ``what`` (one of :data:`STORES`)."""
    return [metric for metric in _chosen(names) if what in metric.stores]


def ceiling_methods(names: Iterable[str]) -> list[CeilingMethod]:
    """The distinct ceilings that divide the metrics ``names``, in their order."""
    out: list[CeilingMethod] = []
    for metric in _chosen(names):
        if metric.ceiling is not None and metric.ceiling not in out:
            out.append(metric.ceiling)
    return out


def ceiling_power(method: str) -> int:
    """How a score is ceiled under the stored ceiling ``method``: ``score**2 / ceiling**power``.

    Methods no registered metric uses (e.g. a published table's) count as correlation-valued (2).
    """
    powers = {m.ceiling.name: m.ceiling.power for m in registered() if m.ceiling is not None}
    return powers.get(method, 2)


def benchmark_kind(benchmark: Benchmark) -> str:
    """``"neural"`` for a benchmark with time bins or ``kind: neural`` in its attributes, else ``"fmri"``."""
    neural = bool(benchmark.time_bins) or benchmark.attrs.get("kind") == "neural"
    return "neural" if neural else "fmri"


def default_metrics(benchmark: Benchmark | str | Any = None) -> tuple[str, ...]:
    """What a survey scores when no metric is named: the metrics whose ``default_on`` names the
    benchmark's kind (:func:`benchmark_kind`): cRSA, veRSA and encoding r on fMRI (Conwell et al.
    2024; predictivity is opt-in there, so an NSD survey's cost does not grow silently),
    predictivity on a neural benchmark. Without a benchmark: the fMRI set.

    Parameters
    ----------
    benchmark : Benchmark or path, optional
    """
    kind = "fmri"
    if benchmark is not None:
        bench = benchmark if isinstance(benchmark, Benchmark) else Benchmark.open(benchmark)
        kind = benchmark_kind(bench)
    return tuple(metric.name for metric in registered() if kind in metric.default_on)
