"""What a metric is: one registered object that scores a layer, and the ceiling that divides it.

A metric declares

* ``needs``: what the scorer must prepare for it (:data:`NEEDS`): the layer's exact RSM
  (``"rsm"``) or its sparse random projection (``"srp"``), the brain RSMs of every group
  (``"brain_rsms"``), the repetition-averaged responses (``"responses"``) and the train/test
  image splits (``"splits"``);
* ``stores``: what a survey keeps of it (:data:`STORES`): tidy ``scores`` (always), the best
  layer's test ``rsms`` (model-to-model similarity), the best layer's ``unit_predictions``
  (unique variance) and per-unit ``unit_scores`` of every layer;
* ``ceiling``: the :class:`CeilingMethod` its scores are divided by, or None;
* ``settings``: the :class:`~zooscope.config.ScoringConfig` fields only it reads; they enter the
  config hash only when the metric is chosen, so configs (and the results they key) from before
  the metric existed keep their hash;
* ``default_on``: the kinds of benchmark (``"fmri"``, ``"neural"``) whose surveys score it when
  no metric is named.

Scoring, the survey, the results database and the report iterate over the registry
(:func:`registered`); none of them names a metric. A new metric is one module in
``zooscope/metrics/`` that subclasses :class:`Metric` and calls :func:`register_metric`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = [
    "NEEDS",
    "STORES",
    "CeilingMethod",
    "LayerContext",
    "LayerScores",
    "Metric",
    "get_metric",
    "register_metric",
    "registered",
]

#: What a metric may need prepared (see the module docstring).
NEEDS = frozenset({"rsm", "srp", "brain_rsms", "responses", "splits"})
#: What a survey may keep of a metric (see the module docstring).
STORES = frozenset({"scores", "rsms", "unit_predictions", "unit_scores"})


@dataclass(frozen=True)
class CeilingMethod:
    """A noise ceiling: how it is computed per unit group, and how it divides a score.

    Attributes
    ----------
    name : str
        The ``method`` stored in the ``ceilings`` table.
    power : int
        Explained variance is ``score**2 / ceiling**power``: 2 for a correlation-valued ceiling
        (an RSA ceiling), 1 for a variance-ratio ceiling (Brain-Score's internal consistency).
    compute : callable
        ``compute(benchmark, config, n_sims=..., skip=..., claim=...)`` yields one
        :class:`~zooscope.metrics.ceilings.CeilingResult` per group of ``config`` not in ``skip``
        (group labels), as soon as it is computed; ``claim(label)``, when given, is asked just
        before a group is computed and False skips it (a concurrent survey computes it).
    description : str
    """

    name: str
    power: int
    compute: Callable[..., Iterator[Any]] = field(repr=False, compare=False)
    description: str = ""


@dataclass
class LayerContext:
    """One layer as every chosen metric sees it.

    Attributes
    ----------
    features : LayerFeatures
        ``srp`` ``[n_images, k]`` and/or ``rsm`` ``[n_images, n_images]`` (as the metrics need).
    brain : BrainData
        The benchmark side (:class:`zooscope.pipeline.brain.BrainData`): splits, responses,
        groups, brain RSMs, and each metric's :meth:`Metric.prepare` output in ``prepared``.
    config : ScoringConfig
    ridge_backend : str
        Array backend of ridge regressions.
    keep_predictions : bool
        Return the per-unit test predictions (for metrics that store ``unit_predictions``).
    shared : dict
        Computations several metrics use, made once per layer (:meth:`share`).
    """

    features: Any
    brain: Any
    config: Any
    ridge_backend: str = "numpy"
    keep_predictions: bool = False
    shared: dict[str, Any] = field(default_factory=dict)

    def share(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, made at most once per layer under ``key`` (e.g. one ridge fit for two metrics)."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]


@dataclass
class LayerScores:
    """What one metric made of one layer.

    Attributes
    ----------
    rows : list of dict
        ``subject, roi, metric, split, score``.
    test_rsms : dict
        ``group -> (train score, test RSM or a callable returning it)`` (``stores`` ``rsms``).
    predictions : dict
        ``group -> (train score, callable returning [n_test, n_units of the group])``
        (``stores`` ``unit_predictions``, when the context keeps predictions).
    unit_scores : DataFrame or None
        ``subject, roi, metric, split, unit, score`` (``stores`` ``unit_scores``).
    diagnostics : dict
        Per-layer columns of the ``layers`` table (e.g. ``alpha_edge_fraction``).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    test_rsms: dict[str, tuple[float, Any]] = field(default_factory=dict)
    predictions: dict[str, tuple[float, Any]] = field(default_factory=dict)
    unit_scores: pd.DataFrame | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class Metric:
    """A score a survey computes for every layer and unit group (subclass and register one).

    Class attributes (see the module docstring): ``name``, ``label`` (axis label of figures),
    ``description``, ``needs``, ``stores``, ``ceiling``, ``settings``, ``default_on``.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    stores: ClassVar[frozenset[str]] = frozenset({"scores"})
    ceiling: ClassVar[CeilingMethod | None] = None
    settings: ClassVar[tuple[str, ...]] = ()
    default_on: ClassVar[frozenset[str]] = frozenset()

    def prepare(
        self,
        benchmark: Any,
        splits: Mapping[str, np.ndarray],
        units: np.ndarray,
        config: Any,
    ) -> Any:
        """Data this metric needs once per benchmark and config (default: none).

        Parameters
        ----------
        benchmark : Benchmark
        splits : mapping
            ``"train"``/``"test"`` -> image positions.
        units : ndarray of int
            Benchmark unit index of each response column.
        config : ScoringConfig

        Returns
        -------
        Anything; the scorer hands it back as ``layer.brain.prepared[self.name]``.
        """
        return None

    def score(self, layer: LayerContext) -> LayerScores:
        """Score one layer on every group and split."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the registry (its ``needs`` and ``stores`` checked); returns it."""
    if metric.name in _REGISTRY:
        raise ValueError(f"a metric called {metric.name!r} is registered already")
    unknown = (set(metric.needs) - NEEDS) | (set(metric.stores) - STORES)
    if unknown or "scores" not in metric.stores:
        raise ValueError(
            f"metric {metric.name!r}: needs must be among {sorted(NEEDS)} and stores among "
            f"{sorted(STORES)}, scores included; got {sorted(unknown) or sorted(metric.stores)}"
        )
    _REGISTRY[metric.name] = metric
    return metric


def registered() -> tuple[Metric, ...]:
    """Every registered metric, in registration order (the order summaries and reports use)."""
    return tuple(_REGISTRY.values())


def get_metric(name: str) -> Metric:
    """The registered metric called ``name`` (``ValueError`` naming the choices otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(_REGISTRY)}") from None
