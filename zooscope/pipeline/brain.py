"""The benchmark side of scoring: responses, unit groups and brain RSMs, prepared once."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zooscope.benchmark import Benchmark
from zooscope.config import ScoringConfig
from zooscope.pipeline.neural import PredictivityData
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
        ``label -> {"train": RSMComparator, "test": RSMComparator}`` of the brain RSMs.
    """

    train: np.ndarray
    test: np.ndarray
    Y_train: np.ndarray
    Y_test: np.ndarray
    groups: dict[str, np.ndarray]
    comparators: dict[str, dict[str, RSMComparator]] = field(repr=False)
    predictivity: PredictivityData | None = field(default=None, repr=False)

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
        comparators = {
            label: {
                "train": RSMComparator(rsm(Y_train[:, idx], dtype="float64"), config.compare),
                "test": RSMComparator(rsm(Y_test[:, idx], dtype="float64"), config.compare),
            }
            for label, idx in groups.items()
            if set(config.metrics) - {"predictivity"}  # brain RSMs only for the RSM-based metrics
        }
        prepared = None
        if "predictivity" in config.metrics:
            prepared = PredictivityData.from_benchmark(
                benchmark, {"train": train, "test": test}, units, config.predictivity_splits
            )
        return cls(train, test, Y_train, Y_test, groups, comparators, prepared)
