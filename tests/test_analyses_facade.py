"""The deprecated ``zooscope.analyses`` facade resolves every old name to its new room."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("name", "room"),
    [
        ("ResultsDB", "zooscope.results"),
        ("survey", "zooscope.pipeline"),
        ("ScoringConfig", "zooscope.pipeline"),
        ("ols_contrast", "zooscope.stats"),
        ("build_report", "zooscope.report"),
    ],
)
def test_old_name_warns_and_is_the_same_object(name: str, room: str) -> None:
    analyses = importlib.import_module("zooscope.analyses")
    with pytest.warns(DeprecationWarning, match=f"moved to {room}.{name}"):
        obj = getattr(analyses, name)
    assert obj is getattr(importlib.import_module(room), name)


def test_unknown_name_is_an_attribute_error() -> None:
    analyses = importlib.import_module("zooscope.analyses")
    with pytest.raises(AttributeError, match="no_such_thing"):
        analyses.no_such_thing  # noqa: B018


def test_dir_lists_the_old_public_api() -> None:
    analyses = importlib.import_module("zooscope.analyses")
    assert {"ResultsDB", "survey", "build_report", "similarity_from_db"} <= set(dir(analyses))
