"""Manifest parsing and validation: every problem located as ``file:line:column``."""

from __future__ import annotations

import pytest

from zooscope.cli.models import sample_entries
from zooscope.zoo import (
    ARCH_CLASSES,
    SOURCES,
    ManifestError,
    get_entry,
    load_manifest,
    manifest_dir,
)

HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"
GOOD_ROW = "vit_t,timm,vit_tiny_patch16_224,random,ViT-Ti,Transformer,random,,"


def problems_of(path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert str(path) in str(caught.value)
    return caught.value.problems


def assert_located(problems: list[str], path, line: int, column: str, *words: str) -> None:
    """Exactly one problem, at ``path:line:column``, mentioning each of ``words``."""
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}:{line}:{column}: "), problems[0]
    for word in words:
        assert word in problems[0], problems[0]


def test_valid_manifest_keeps_every_column(write_csv):
    path = write_csv(
        f"""
{HEADER},seed,train_data_size,model_string,notes,compare_diet,paper_extra
{GOOD_ROW},7,1.2e6,vit_tiny_paper,a note,imagenet,x
r18,torchvision,resnet18,IMAGENET1K_V1,ResNet-18,Convolutional,classification,Semantic,imagenet1k,,,,,,
"""
    )
    first, second = load_manifest(path)
    assert (first.model_uid, first.source, first.seed, first.train_data_size) == (
        "vit_t",
        "timm",
        7,
        1_200_000,
    )
    assert first.is_random and not second.is_random
    assert first.model_string == "vit_tiny_paper" and second.model_string == "r18"
    assert first.metadata == {
        "model_string": "vit_tiny_paper",
        "notes": "a note",
        "compare_diet": "imagenet",
        "paper_extra": "x",
    }
    assert first.line == 2 and second.line == 3 and first.manifest == str(path)
    record = first.to_record()
    assert record["compare_diet"] == "imagenet" and record["arch_class"] == "Transformer"


def test_missing_required_column(write_csv):
    path = write_csv(
        """
model_uid,source,name,weights,display_name,task,task_cluster,train_data
vit_t,timm,vit_tiny_patch16_224,random,ViT-Ti,random,,
"""
    )
    assert_located(problems_of(path), path, 1, "arch_class", "required column")


def test_unknown_source(write_csv):
    path = write_csv(f"{HEADER}\n{GOOD_ROW}\nx,keras,resnet,random,X,Convolutional,random,,\n")
    assert_located(problems_of(path), path, 3, "source", "keras", "torchvision")


def test_duplicate_uid(write_csv):
    path = write_csv(f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n")
    assert_located(problems_of(path), path, 3, "model_uid", "duplicate", "line 2")


@pytest.mark.parametrize(
    ("source", "name", "weights"),
    [
        ("torchvision", "resnet18", "imagenet1k_v1"),
        ("timm", "resnet18", "A1-in1k"),
        ("open_clip", "RN50", "OpenAI"),
        ("transformers", "facebook/dino-vits16", "main"),
        ("checkpoint", "/tmp/x.pth", "yes"),
    ],
)
def test_malformed_weights_tag(write_csv, source, name, weights):
    arch = ",timm:resnet18" if source == "checkpoint" else ","
    path = write_csv(
        f"{HEADER},arch\n{GOOD_ROW},\nm,{source},{name},{weights},M,Convolutional,x,,{arch}\n"
    )
    assert_located(problems_of(path), path, 3, "weights", source, repr(weights))


@pytest.mark.parametrize("weights", ["random", "DEFAULT"])
def test_empty_name(write_csv, weights):
    path = write_csv(f"{HEADER}\n{GOOD_ROW}\nm,torchvision,,{weights},M,Convolutional,x,,\n")
    assert_located(problems_of(path), path, 3, "name", "must not be empty")


def test_timm_name_with_tag(write_csv):
    path = write_csv(f"{HEADER}\nm,timm,resnet18.a1_in1k,random,M,Convolutional,x,,\n")
    assert_located(problems_of(path), path, 2, "name", "weights column")


@pytest.mark.parametrize(
    ("arch", "expected"), [("", "need the architecture"), ("keras:resnet", "timm:<name>")]
)
def test_bad_arch_for_checkpoint(write_csv, arch, expected):
    path = write_csv(
        f"{HEADER},arch\nm,checkpoint,/tmp/x.pth,pretrained,M,Convolutional,x,,,{arch}\n"
    )
    assert_located(problems_of(path), path, 2, "arch", expected)


def test_unavailable_checkpoint_needs_no_arch(write_csv):
    path = write_csv(
        f"{HEADER},arch,available,unavailable_reason\n"
        "m,checkpoint,https://example.org/x.pth,pretrained,M,Convolutional,x,,,,false,needs library X\n"
    )
    (entry,) = load_manifest(path)
    assert (
        not entry.available and entry.unavailable_reason == "needs library X" and entry.arch is None
    )


def test_available_false_without_reason(write_csv):
    path = write_csv(f"{HEADER},available,unavailable_reason\n{GOOD_ROW},false,\n")
    assert_located(problems_of(path), path, 2, "unavailable_reason", "must say why")


def test_bad_integer_and_arch_class(write_csv):
    path = write_csv(f"{HEADER},seed\nm,timm,resnet18,random,M,CNN,x,,,-1\n")
    problems = problems_of(path)
    assert sorted(p.split(": ")[0] for p in problems) == [f"{path}:2:arch_class", f"{path}:2:seed"]


def test_every_problem_reported_together(write_csv):
    path = write_csv(
        f"""
{HEADER},arch,available,unavailable_reason
{GOOD_ROW},,,
x,keras,resnet,random,X,Convolutional,random,,,,,
y,torchvision,,DEFAULT,Y,Convolutional,classification,,,,,
{GOOD_ROW},,,
z,open_clip,RN50,OpenAI,Z,Convolutional,x,,,,,
c,checkpoint,/tmp/c.pth,pretrained,C,Convolutional,x,,,,,
u,timm,resnet18,random,U,Convolutional,x,,,,no,
"""
    )
    problems = problems_of(path)
    assert [p.split(": ")[0] for p in problems] == [
        f"{path}:3:source",
        f"{path}:4:name",
        f"{path}:5:model_uid",
        f"{path}:6:weights",
        f"{path}:7:arch",
        f"{path}:8:unavailable_reason",
    ]


def test_builtin_name_resolves_and_unknown_is_clear():
    assert [e.model_uid for e in load_manifest("demo")] == [
        e.model_uid for e in load_manifest(manifest_dir() / "demo.csv")
    ]
    assert get_entry("effnet_lite0", "demo").arch == "timm:efficientnet_lite0"
    with pytest.raises(FileNotFoundError, match="no_such_manifest"):
        load_manifest("no_such_manifest")
    with pytest.raises(KeyError, match="effnet_lite0"):
        get_entry("effnet", "demo")


@pytest.mark.parametrize("name", sorted(p.stem for p in manifest_dir().glob("*.csv")))
def test_builtin_manifests_are_valid(name):
    entries = load_manifest(name)
    assert entries and len({e.model_uid for e in entries}) == len(entries)


def test_demo_manifest_covers_the_zoo():
    entries = load_manifest("demo")
    assert {e.source for e in entries} >= {"torchvision", "timm", "open_clip", "checkpoint"}
    assert {e.arch_class for e in entries} == set(ARCH_CLASSES)
    assert sum(e.is_random for e in entries) >= 6


def test_sample_covers_every_source_and_arch_class(write_csv):
    rows = [
        f"{kind}{i},{source},m{i},random,M,{arch},random,,"
        for i, (kind, source, arch) in enumerate(
            [("a", s, ARCH_CLASSES[k % 4]) for k, s in enumerate(SOURCES) for _ in range(3)]
        )
    ]
    entries = load_manifest(
        write_csv("\n".join([f"{HEADER},arch", *(r + ",timm:x" for r in rows)]))
    )
    for n in (1, 5, 9):
        sample = sample_entries(entries, n)
        assert {e.source for e in sample} == set(SOURCES)
        assert {e.arch_class for e in sample} == set(ARCH_CLASSES)
        assert len(sample) == max(n, len(SOURCES))  # one row per source at least
        assert sample == sample_entries(entries, n)  # deterministic
        assert [e.model_uid for e in sample] == sorted(
            (e.model_uid for e in sample), key=lambda u: int(u[1:])
        )
    assert sample_entries(entries, len(entries)) == entries
    assert sample_entries(entries, 6, seed=1) != sample_entries(entries, 6, seed=2)
