"""Replay: passes after the first start from a recorded block output, and no number changes."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import ToTensor

from zooscope.feature_extraction import extract
from zooscope.feature_extraction.replay import (
    cut_candidates,
    plan_replay,
    trace_forward,
    verify_cut,
)
from zooscope.zoo import LoadedModel, ModelInfo, get_entry, load_model, parse_manifest
from zooscope.zoo.preprocess import Preprocess

pytestmark = pytest.mark.usefixtures("single_torch_thread")

HEADER = "model_uid,source,name,weights,display_name,arch_class,task,task_cluster,train_data"


def as_loaded(module: nn.Module, uid: str) -> LoadedModel:
    entry = parse_manifest(
        [HEADER, f"{uid},torchvision,resnet18,random,{uid},Convolutional,random,,"]
    )[0]
    preprocess = Preprocess(ToTensor())
    info = ModelInfo(
        n_params=0, input_size=(3, 0, 0), weights_id=f"test:{uid}", preprocess=preprocess.describe()
    )
    return LoadedModel(module.eval(), preprocess, entry, info, "cpu")


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.conv(x))


class SkipNet(nn.Module):
    """A chain of blocks whose head also reads the stem's output: no block is a cut."""

    def __init__(self, skip: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.skip = skip
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(*[Block(8) for _ in range(4)])
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        x = self.blocks(stem)
        if self.skip:
            x = x + stem
        return self.head(x.mean((2, 3)))


def pixels(n: int = 20, size: int = 16) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def extracted(model: LoadedModel, replay: bool, budget: int) -> dict[str, tuple]:
    run = extract(
        model, pixels(), n_components=16, memory_budget=budget, batch_size=6, progress=False,
        replay=replay,
    )  # fmt: skip
    return {f.name: (f.rsm, f.srp) for f in run}


def assert_same(a: dict[str, tuple], b: dict[str, tuple]) -> None:
    assert list(a) == list(b)
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)  # bit for bit (NaN == NaN)


def count_runs(conv: nn.Conv2d) -> list[int]:
    """How often the convolution is computed (a replayed module is called, but not computed)."""
    calls = [0]
    compute = conv._conv_forward

    def counted(*args):
        calls[0] += 1
        return compute(*args)

    conv._conv_forward = counted
    return calls


def test_replay_is_bit_identical_and_runs_the_stem_once_per_image(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the recordings go
    model = as_loaded(load_model(get_entry("resnet18_random")).module, "resnet18_tiny")
    stem = count_runs(model.module.conv1)
    budget = 700_000  # many passes: the early layers are split over several
    plain = extracted(model, replay=False, budget=budget)
    batches_per_pass = 4  # 20 images in batches of 6
    passes = (stem[0] - 1) // batches_per_pass  # the probe runs it once more
    assert passes >= 10
    stem[0] = 0
    replayed = extracted(model, replay=True, budget=budget)
    assert_same(plain, replayed)
    # A pass runs the stem only when no block before its layers is a cut (the first pass, and
    # passes that start inside a block with a downsampling shortcut), plus the probe and the trace.
    assert stem[0] <= 3 * batches_per_pass + 2 < passes * batches_per_pass / 3
    assert not list(tmp_path.iterdir())  # the recordings are gone


@pytest.mark.parametrize("skip", [False, True])
def test_a_block_the_head_bypasses_is_not_a_cut(skip: bool) -> None:
    module = SkipNet(skip).eval()
    probe = torch.rand(3, 3, 16, 16)
    trace = trace_forward(module, probe)
    cuts = {cut.path: cut for cut in cut_candidates(module, trace, 3)}
    assert {"stem", "blocks", "blocks.0", "blocks.3"} <= set(cuts)
    assert "blocks.0.conv" not in cuts  # its parent is a block, not a container
    assert cuts["blocks.2"].prefix == ("stem", "blocks.0", "blocks.1")
    assert verify_cut(module, probe, trace, cuts["stem"])  # the head reads the stem's output
    # a block's replay gives the stem a zero placeholder: fine unless the head reads the stem
    assert verify_cut(module, probe, trace, cuts["blocks.2"]) is not skip
    assert verify_cut(module, probe, trace, cuts["blocks"]) is not skip


def test_with_a_skip_connection_extraction_is_still_exact() -> None:
    model = as_loaded(SkipNet(skip=True), "skipnet")
    budget = 300_000
    plain = extracted(model, replay=False, budget=budget)
    assert_same(plain, extracted(model, replay=True, budget=budget))


def test_plan_replay_uses_only_cuts_recorded_by_the_pass_before() -> None:
    module = SkipNet(skip=False).eval()
    probe = torch.rand(3, 3, 16, 16)
    trace = trace_forward(module, probe)
    keys = [
        k
        for k in trace.digests
        if k[0] and not isinstance(module.get_submodule(k[0]), nn.Sequential)
    ]
    keys.sort(key=trace.event)
    passes = [keys[i : i + 2] for i in range(0, len(keys), 2)]
    plan = plan_replay(module, probe, passes)
    assert plan[0] is None and any(plan)
    for before, after, cut in zip(passes, passes[1:], plan[1:], strict=False):
        if cut is not None:
            assert cut.end <= max(trace.event(k) for k in before)  # recorded in time
            assert cut.end < min(trace.event(k) for k in after)  # before the pass's layers
    ends = [cut.end for cut in plan if cut is not None]
    assert ends == sorted(ends)
