"""The benchmark side of scoring: responses, unit groups and brain RSMs, prepared once.

What is prepared follows what the chosen metrics need (:attr:`Metric.needs
<zooscope.metrics.Metric.needs>`): brain RSMs only for metrics that compare RSMs, and each
metric's own data (:meth:`Metric.prepare <zooscope.metrics.Metric.prepare>`, e.g. predictivity's
cross-validation splits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zooscope.benchmark import Benchmark
from zooscope.config import ScoringConfig
from zooscope.metrics import get_metric, needed
from zooscope.rsa import RSMComparator, rsm


@dataclass
class BrainData:
    """The benchmark side of scoring, prepared once and reused for every layer and model.

    Attributes
    ----------
    train, test : ndarray of int
        Image positions of the two splits.
    Y_train, Y_test : ndarray, shapes [n_train, n_units] and [n_test, n_units]
        Repetition-averaged responses of the units in any group.
    groups : dict
        ``"subject|roi"`` -> column indices into ``Y_*``.
    comparators : dict
        ``label -> {"train": RSMComparator, "test": RSMComparator}`` of the brain RSMs (empty
        when no chosen metric needs them).
    prepared : dict
        Metric name -> what its :meth:`~zooscope.metrics.Metric.prepare` returned.
    """

    train: np.ndarray
    test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    groups: dict[str, np.ndarray]
    comparators: dict[str, dict[str, RSMComparator]] = field(repr=False)
    prepared: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_benchmark(cls, benchmark: Benchmark, config: ScoringConfig) -> BrainData:
        """Read the responses once and build the brain RSMs of every group and split."""
        groups = config.groups(benchmark)
        units = np.unique(np.concatenate(list(groups.values())))
        column = {u: i for i, u in enumerate(units)}
        groups = {label: np.array([column[u] for u in idx]) for label, idx in groups.items()}
        splits = benchmark.splits
        train, test = splits[config.train_split], splits[config.test_split]
        mean = benchmark.mean_responses(units)  # [units, images]
        if np.isnan(mean).any():
            raise ValueError(
                "some units have no repetition at all for some images; drop them when preparing the benchmark"
            )
        Y_train, Y_test = mean[:, train].T.copy(), mean[:, test].T.copy()
        rsm_groups = groups if needed(config.metrics, "brain_rsms") else {}
        comparators = {
            label: {
                "train": RSMComparator(rsm(Y_train[:, idx], dtype="float64"), config.compare),
                "test": RSMComparator(rsm(Y_test[:, idx], dtype="float64"), config.compare),
            }
            for label, idx in rsm_groups.items()
        }
        prepared = {}
        for name in config.metrics:
            data = get_metric(name).prepare(
                benchmark, {"train": train, "test": test}, units, config
            )
            if data is not None:
                prepared[name] = data
        return cls(train, test, Y_train, Y_test, groups, comparators, prepared)
