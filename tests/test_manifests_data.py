"""Checks on the data in ``manifests/conwell2024.csv`` and ``manifests/openclip.csv``.

Plain pandas plus the model libraries' registries: the manifests must name models that
exist in today's torchvision / timm / open_clip, keep the paper's 224 models joinable by
``model_string``, and be exactly what ``scripts/build_conwell2024_manifest.py`` generates.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from reference_data import CONWELL as REFERENCE
from reference_data import needs_conwell2024

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
SCRIPT = ROOT / "scripts" / "build_conwell2024_manifest.py"

REQUIRED = [
    "model_uid",
    "source",
    "name",
    "weights",
    "display_name",
    "arch_class",
    "task",
    "task_cluster",
    "train_data",
]
SOURCES = {
    "torchvision",
    "timm",
    "open_clip",
    "transformers",
    "checkpoint",
    "taskonomy",
    "ipcl",
    "yolo",
    "midas",
}
FAMILIES = {"taskonomy", "ipcl", "yolo", "midas"}
ARCH_CLASSES = {"Convolutional", "Transformer", "MLP-Mixer", "Hybrid"}
TASKS = {
    "classification",
    "self-supervised-contrastive",
    "self-supervised-noncontrastive",
    "language-aligned",
    "detection",
    "segmentation",
    "depth",
    "random",
}
UID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

needs_reference = needs_conwell2024


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(MANIFESTS / name, keep_default_na=False, dtype=str)


@pytest.fixture(scope="module")
def conwell() -> pd.DataFrame:
    return _read("conwell2024.csv")


@pytest.fixture(scope="module")
def openclip() -> pd.DataFrame:
    return _read("openclip.csv")


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_conwell2024_manifest", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def paper() -> pd.DataFrame:
    results = pd.read_csv(REFERENCE / "results_summary.csv")
    return results.drop_duplicates("model_string").set_index("model_string")


# ----------------------------------------------------------------------------- both files
@pytest.mark.parametrize("fname", ["conwell2024.csv", "openclip.csv"])
def test_schema_and_allowed_values(fname):
    frame = _read(fname)
    assert list(frame.columns[: len(REQUIRED)]) == REQUIRED
    assert frame["model_uid"].is_unique, frame["model_uid"][
        frame["model_uid"].duplicated()
    ].tolist()
    bad_uid = [u for u in frame["model_uid"] if not UID_RE.match(u)]
    assert not bad_uid
    for col in [c for c in REQUIRED if c != "train_data"]:
        assert (frame[col] != "").all(), f"empty {col}"
    assert set(frame["source"]) <= SOURCES
    assert set(frame["arch_class"]) <= ARCH_CLASSES
    tasks = set(frame["task"])
    assert all(t in TASKS or re.fullmatch(r"taskonomy-[a-z0-9_]+", t) for t in tasks), tasks
    assert set(frame["available"]) <= {"true", "false"}
    assert all(TAG_RE.match(w) for w in frame["weights"])
    compare = [c for c in frame.columns if c.startswith("compare_")]
    assert compare, "no compare_* columns"


@pytest.mark.parametrize("fname", ["conwell2024.csv", "openclip.csv"])
def test_random_rows_are_seeded_twins(fname):
    frame = _read(fname)
    random = frame[frame["weights"] == "random"]
    assert len(random) > 0
    assert (random["task"] == "random").all()
    assert (random["seed"] == "0").all()
    assert (random["train_data"] == "").all()
    trained = frame[frame["weights"] != "random"]
    assert (trained["train_data"] != "").all()
    assert (trained["seed"] == "").all()
    # Every random model builds the same architecture as a trained model of the file.
    if fname == "conwell2024.csv":
        twins = {(s, n) for s, n in zip(trained["source"], trained["name"], strict=True)}
        lonely = random[
            [(s, n) not in twins for s, n in zip(random["source"], random["name"], strict=True)]
        ]
        assert lonely.empty, lonely["model_uid"].tolist()


def test_unavailable_rows_say_why(conwell):
    unavailable = conwell[conwell["available"] == "false"]
    assert (unavailable["unavailable_reason"] != "").all()
    available = conwell[conwell["available"] == "true"]
    assert (available["unavailable_reason"] == "").all()
    # Models zooscope cannot load yet stay in the manifest (issue 16: 209 of 224 load).
    assert set(unavailable["paper_source"]) == {"detectron", "bit_expert"}
    assert len(available) == 209


def test_family_rows(conwell):
    family = conwell[conwell["source"].isin(FAMILIES)]
    assert family.groupby("source").size().to_dict() == {
        "ipcl": 4,
        "midas": 1,
        "taskonomy": 25,
        "yolo": 3,
    }
    trained = family[family["weights"] != "random"]
    assert all(c.startswith("https://") for c in trained["checkpoint"])
    assert (family[family["weights"] == "random"]["checkpoint"] == "").all()


def test_checkpoint_rows(conwell):
    ckpt = conwell[conwell["source"] == "checkpoint"]
    assert len(ckpt) > 0
    assert all(
        n.startswith(("https://", "package:")) or Path(n).is_absolute() for n in ckpt["name"]
    )
    loadable = ckpt[ckpt["available"] == "true"]
    assert len(loadable) >= 20  # VISSL / DINO ResNet-50s and SLIP ViTs
    assert all(re.fullmatch(r"(timm|torchvision):[A-Za-z0-9_.]+", a) for a in loadable["arch"])


# ------------------------------------------------------------------------- conwell 2024
@needs_reference
def test_conwell_rows_are_the_papers_224_models(conwell, paper):
    assert len(conwell) == 224
    assert conwell["model_string"].is_unique
    assert set(conwell["model_string"]) == set(paper.index)


@needs_reference
def test_conwell_keeps_paper_metadata_and_contrasts(conwell, paper):
    aligned = paper.loc[conwell["model_string"]]
    assert (conwell["paper_model"].to_numpy() == aligned["model"].to_numpy()).all()
    assert (conwell["display_name"].to_numpy() == aligned["display_name"].to_numpy()).all()
    compare = [c for c in paper.columns if c.startswith("compare_")]
    for col in compare:
        expected = aligned[col].fillna("").astype(str).to_numpy()
        assert (conwell[col].to_numpy() == expected).all(), col
    classes = aligned["model_class"].dropna()
    assert (conwell.set_index("model_string").loc[classes.index, "arch_class"] == classes).all()
    is_random = aligned["train_task"].eq("random").to_numpy()
    assert (conwell.loc[is_random, "weights"] == "random").all()


@needs_reference
def test_conwell_param_counts_are_the_papers(conwell):
    counts = pd.read_csv(REFERENCE / "model_statistics" / "parameter_count.csv")
    counts = counts.dropna().set_index("model_string")["total_params"].astype("int64")
    # parameter_count.csv names a few models by the paper's `model` (IPCL).
    key = conwell["model_string"].where(
        conwell["model_string"].isin(counts.index), conwell["paper_model"]
    )
    known = key.isin(counts.index)
    assert known.sum() == len(counts)
    manifest = conwell.loc[known, "param_count"].astype("int64").to_numpy()
    assert (manifest == counts.loc[key[known]].to_numpy()).all()


@needs_reference
def test_conwell_mismatches_are_explained(conwell):
    with_counts = conwell[(conwell["param_count"] != "") & (conwell["library_param_count"] != "")]
    paper = with_counts["param_count"].astype("int64")
    library = with_counts["library_param_count"].astype("int64")
    off = (library - paper).abs() > 0.01 * paper
    assert with_counts.loc[off, "notes"].str.contains("param count mismatch").all()
    assert not with_counts.loc[~off, "notes"].str.contains("param count mismatch").any()
    # The timm/torchvision classification models must match the paper's architecture.
    classifiers = with_counts[with_counts["source"].isin(["timm", "torchvision"])]
    unexplained = classifiers["notes"].str.contains("unexplained")
    assert not unexplained.any(), classifiers.loc[unexplained, "model_uid"].tolist()


def test_conwell_names_exist_in_todays_libraries(conwell):
    import open_clip
    import timm
    import torchvision

    tv_models = set(torchvision.models.list_models())
    clip_pairs = set(open_clip.list_pretrained())
    for row in conwell.itertuples():
        source, name, weights = row.source, row.name, row.weights
        if source == "checkpoint" and row.arch:
            source, name, weights = *row.arch.split(":", 1), "random"
        if source == "torchvision":
            assert name in tv_models, name
            if weights != "random":
                enum = torchvision.models.get_model_weights(name)
                assert weights in enum.__members__, (name, weights)
        elif source == "timm":
            assert timm.is_model(name), name
            if weights != "random":
                assert timm.list_pretrained(f"{name}.{weights}") == [f"{name}.{weights}"], (
                    name,
                    weights,
                )
        elif source == "open_clip":
            assert weights == "random" or (name, weights) in clip_pairs, (name, weights)


@needs_reference
def test_conwell_csv_is_what_the_generator_writes(conwell, builder):
    built = builder.build_conwell2024(REFERENCE, count_params=False)
    # Round-trip through CSV text, exactly as the committed file was written and is read.
    built = pd.read_csv(io.StringIO(built.to_csv(index=False)), keep_default_na=False, dtype=str)
    assert list(built.columns) == list(conwell.columns)
    # Without parameter counting the generator leaves counts and mismatch notes out.
    skip = {"library_param_count", "notes"}
    for col in built.columns:
        if col not in skip:
            assert (built[col].to_numpy() == conwell[col].to_numpy()).all(), col
    base_notes = conwell["notes"].str.replace(r";? ?param count mismatch:.*$", "", regex=True)
    assert (built["notes"].to_numpy() == base_notes.to_numpy()).all()


def test_task_normalisation_rejects_unknown_tasks(builder):
    row = pd.Series({"train_task": "telepathy", "model": "m"})
    with pytest.raises(ValueError, match="telepathy"):
        builder.normalise_task(row)


def test_safe_uid(builder):
    assert builder.safe_uid("ViT-B/16_clip") == "ViT-B-16_clip"
    assert (
        builder.safe_uid("ResNet50-SwAV-BS4096-2x224+6x96_x") == "ResNet50-SwAV-BS4096-2x224-6x96_x"
    )


# ---------------------------------------------------------------------------- open_clip
def test_openclip_rows_exist_with_the_right_activation(openclip):
    import open_clip

    pairs = set(open_clip.list_pretrained())
    assert (openclip["source"] == "open_clip").all()
    trained = openclip[openclip["weights"] != "random"]
    assert (trained["task"] == "language-aligned").all()
    assert len(trained) >= 50
    for name, tag in zip(trained["name"], trained["weights"], strict=True):
        assert (name, tag) in pairs, (name, tag)
        quick = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
        assert quick == name.endswith("-quickgelu") or (f"{name}-quickgelu", tag) not in pairs
    assert {"wit400m", "laion400m", "laion2b", "datacomp1b", "yfcc15m", "cc12m"} <= set(
        trained["train_data"]
    )
    assert {"Convolutional", "Transformer"} <= set(trained["arch_class"])
    # The diet contrast: one architecture, several datasets.
    diet = trained[trained["name"].str.startswith("ViT-B-32") & (trained["compare_diet"] != "")]
    assert diet["compare_diet"].nunique() >= 5


def test_openclip_train_data_rules(builder):
    assert builder.openclip_train_data("ViT-B-32", "openai") == "wit400m"
    assert builder.openclip_train_data("ViT-B-32", "laion2b_s34b_b79k") == "laion2b"
    assert (
        builder.openclip_train_data("ViT-B-32", "commonpool_m_clip_s128m_b4k")
        == "commonpool-m-clip"
    )
    assert builder.openclip_train_data("ViT-B-32", "commonpool_m_s128m_b4k") == "commonpool-m"
    with pytest.raises(ValueError, match="no train_data rule"):
        builder.openclip_train_data("ViT-B-32", "mystery")


# -------------------------------------------------------------- offline random instantiation
def _sample(frame: pd.DataFrame) -> pd.DataFrame:
    """The smallest available row of every (source, arch_class)."""
    rows = frame[(frame["available"] == "true") & (frame["library_param_count"] != "")].copy()
    rows["n"] = rows["library_param_count"].astype("int64")
    return rows.sort_values("n").groupby(["source", "arch_class"]).head(1)


def _instantiate(builder, source: str, name: str, weights: str, arch: str):
    """Build a row's architecture for real (CPU, random weights, no download)."""
    import torch

    torch.manual_seed(0)
    if source == "checkpoint":
        source, name = arch.split(":", 1)
        weights = "random"
    if source == "torchvision":
        import torchvision

        kwargs = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
        return torchvision.models.get_model(name, weights=None, **kwargs)
    if source == "timm":
        import timm

        full = name if weights == "random" else f"{name}.{weights}"
        return timm.create_model(full, pretrained=False)
    if source == "open_clip":
        import open_clip

        return open_clip.create_model(name, pretrained=None).visual
    if source in FAMILIES:
        from zooscope.zoo.sources import get_source

        return get_source(source).models[name].build()
    raise AssertionError(source)


@pytest.mark.slow
def test_sample_instantiates_offline_with_random_weights(conwell, openclip, builder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sample = pd.concat([_sample(conwell), _sample(openclip[openclip["weights"] == "random"])])
    covered = set(zip(sample["source"], sample["arch_class"], strict=True))
    wanted = set(zip(conwell["source"], conwell["arch_class"], strict=True)) - {
        ("transformers", "Transformer")  # covered by the test below
    }
    available = conwell[conwell["available"] == "true"]
    wanted &= set(zip(available["source"], available["arch_class"], strict=True))
    assert wanted <= covered
    for row in sample.itertuples():
        module = _instantiate(builder, row.source, row.name, row.weights, row.arch)
        n = sum(p.numel() for p in module.parameters())
        assert n == int(row.library_param_count), row.model_uid


@pytest.mark.slow
def test_transformers_rows_build_offline_when_config_cached(conwell):
    from transformers import AutoConfig

    rows = conwell[(conwell["source"] == "transformers") & (conwell["available"] == "true")]
    assert len(rows) > 0
    from zooscope.zoo.sources.transformers_source import vendored_config

    for name in rows["name"]:
        try:
            AutoConfig.from_pretrained(vendored_config(name) or name, local_files_only=True)
        except OSError:
            pytest.skip(f"{name}: config.json not in the HF cache (random init needs it offline)")
