"""Progress of a survey as it runs: events from the scorer, and their rendering on the terminal.

:func:`~zooscope.pipeline.scoring.score_model` reports what it does as :class:`ProgressEvent`
values to an optional callback (``on_progress``): the model's plan (how many layers, in how many
passes), each pass it starts, each layer it has scored, and its end. The survey renders them as a
per-model bar over the layers scored, with an ETA, under its bar over models (:class:`SurveyBars`).
Weights come from the cost model when an estimate of the model is cached
(:mod:`zooscope.pipeline.cost`), so a slow early layer does not fool the ETA.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

__all__ = ["ProgressCallback", "ProgressEvent", "SurveyBars"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of scoring a model.

    Attributes
    ----------
    kind : {"planned", "pass", "layer", "done"}
        ``planned``: the extraction is planned (``total`` layers in ``passes`` passes);
        ``pass``: pass ``number`` of ``passes`` starts; ``layer``: ``done`` of ``total`` layers
        are scored (the last one is ``layer``); ``done``: the model is scored.
    model_uid : str
    done, total : int
        Layers scored so far, and the model's layers.
    number, passes : int
        The pass that starts, and the number of passes.
    layer : str
        The layer just scored.
    elapsed : float
        Seconds since the model started.
    """

    kind: str
    model_uid: str
    done: int = 0
    total: int = 0
    number: int = 0
    passes: int = 0
    layer: str = ""
    elapsed: float = 0.0


#: What ``score_model(..., on_progress=...)`` calls with each event.
ProgressCallback = Callable[[ProgressEvent], None]


#: How both bars look: "what, how far: 34%|███▎      | [elapsed<remaining]" (tqdm would put
#: ", " before a postfix, so the counts go into the description).
_BAR = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]"


class SurveyBars:
    """A bar over the survey's models and one over the current model's layers, both with an ETA.

    Parameters
    ----------
    model_seconds : dict
        Model uid -> predicted seconds (the cost model's, where cached); the survey bar advances
        by these, so its ETA is the predicted time of the models left. Models without a
        prediction count as the mean of the others (or 1 each when there is none).
    layer_seconds : dict
        Model uid -> predicted seconds per layer, the weights of the layer bar.
    todo : sequence of str
        The models the survey will score, in order.
    enabled : bool or None
        tqdm's ``disable`` negated (None: on a terminal only).
    """

    def __init__(
        self,
        todo: Sequence[str],
        model_seconds: dict[str, float] | None = None,
        layer_seconds: dict[str, Sequence[float]] | None = None,
        enabled: bool | None = None,
    ) -> None:
        known = dict(model_seconds or {})
        default = sum(known.values()) / len(known) if known else 1.0
        self.weights = {uid: known.get(uid, default) for uid in todo}
        self.layer_seconds = dict(layer_seconds or {})
        self.predicted = bool(known)
        disable = None if enabled is None else not enabled
        self.survey = tqdm(
            total=round(sum(self.weights.values()), 3),
            desc="survey",
            unit="s" if self.predicted else "model",
            disable=disable,
            bar_format=_BAR,
        )
        self.done_models = 0
        self.todo = len(todo)
        self._postfix()
        self.layer_bar: Any = None
        self.disable = disable
        self._weights: Sequence[float] = ()

    def _postfix(self) -> None:
        self.survey.set_description_str(
            f"survey {self.done_models}/{self.todo} models", refresh=False
        )

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "planned":
            self._close_layer_bar()
            weights = list(self.layer_seconds.get(event.model_uid, ()))
            self._weights = weights if len(weights) == event.total else [1.0] * event.total
            self.layer_bar = tqdm(
                total=round(sum(self._weights), 3),
                desc=event.model_uid,
                leave=False,
                disable=self.disable,
                bar_format=_BAR,
            )
            self.layer_bar.set_description_str(
                f"{event.model_uid} 0/{event.total} layers, {event.passes} passes"
            )
        elif event.kind == "pass" and self.layer_bar is not None:
            self.layer_bar.set_description_str(
                f"{event.model_uid} {event.done}/{event.total} layers, pass {event.number}/{event.passes}"
            )
        elif event.kind == "layer" and self.layer_bar is not None:
            step = self._weights[event.done - 1] if event.done <= len(self._weights) else 1.0
            self.layer_bar.set_description_str(
                f"{event.model_uid} {event.done}/{event.total} layers", refresh=False
            )
            self.layer_bar.update(step)

    def model_finished(self, model_uid: str) -> None:
        """A model's outcome (scored or failed) has been stored."""
        self._close_layer_bar()
        self.done_models += 1
        self._postfix()
        self.survey.update(self.weights.get(model_uid, 0.0))
        if self.done_models == self.todo:  # the rounded weights may leave it at 99.9%
            self.survey.n = self.survey.total
            self.survey.refresh()

    def _close_layer_bar(self) -> None:
        if self.layer_bar is not None:
            self.layer_bar.close()
            self.layer_bar = None

    def close(self) -> None:
        self._close_layer_bar()
        self.survey.close()


class Reporter:
    """Calls ``callback`` with the events of one model's scoring (a no-op without callback)."""

    def __init__(self, model_uid: str, callback: ProgressCallback | None) -> None:
        self.model_uid = model_uid
        self.callback = callback
        self.started = time.perf_counter()
        self.total = 0
        self.done = 0
        self.passes = 0

    def emit(self, kind: str, **fields: Any) -> None:
        if self.callback is None:
            return
        event = ProgressEvent(
            kind,
            self.model_uid,
            done=self.done,
            total=self.total,
            passes=self.passes,
            elapsed=time.perf_counter() - self.started,
            **fields,
        )
        try:
            self.callback(event)
        except Exception:  # a broken display must never fail a model
            logging.getLogger(__name__).debug("progress callback failed", exc_info=True)
