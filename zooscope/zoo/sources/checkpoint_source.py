"""Checkpoints (local file, URL, or a declared file inside an installed package, see
:mod:`zooscope.zoo.checkpoints`) loaded into a named timm or torchvision architecture (the
manifest's ``arch`` column).

Checkpoints published by other projects rarely use the architecture library's parameter names.
Keys are matched by name after stripping a prefix (``module.``, or the ``strip_prefix`` column);
when names still differ but both state dicts hold the same tensors in the same order, they are
mapped positionally, each pair checked by shape. Optional manifest columns:

``checkpoint_key``
    Dotted path to the state dict inside the file (e.g. ``classy_state_dict.base_model.model.trunk``);
    by default a lone ``state_dict``/``model``/``state`` entry is unwrapped.
``strip_prefix``
    A prefix to remove from every checkpoint key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from zooscope.zoo.checkpoints import checkpoint_path, fetch_checkpoint, is_url
from zooscope.zoo.hub import url_host
from zooscope.zoo.manifest import ModelEntry
from zooscope.zoo.sources.base import Source, Transform, register_source
from zooscope.zoo.sources.timm_source import build_timm, uncropped
from zooscope.zoo.sources.torchvision_source import build_torchvision, conwell2024_torchvision
from zooscope.zoo.weights_file import load_weights

logger = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "state", "net", "module")


def unwrap_state_dict(obj: object, key: str | None = None) -> dict[str, torch.Tensor]:
    """Find the parameter dictionary inside a loaded checkpoint."""
    if key:
        for part in key.split("."):
            if not isinstance(obj, Mapping) or part not in obj:
                raise KeyError(f"checkpoint has no entry {part!r} on the path {key!r}")
            obj = obj[part]
    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if len(inner) != 1:
            raise KeyError(
                f"cannot find the state dict in the checkpoint (top-level keys: {list(obj)[:10]}); set checkpoint_key"
            )
        obj = obj[inner[0]]
    if not isinstance(obj, Mapping):
        raise TypeError(f"checkpoint is a {type(obj).__name__}, expected a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def remap_state_dict(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], strip_prefix: str = ""
) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to the architecture's keys.

    Parameters
    ----------
    source : mapping
        The checkpoint's tensors.
    target : mapping
        The architecture's ``state_dict()``.
    strip_prefix : str
        Selects the checkpoint's tensors under this prefix and removes it (tensors without it,
        e.g. a text tower or a projection head, are dropped). ``module.`` (left by
        ``DataParallel``) is always stripped when every key has it.

    Returns
    -------
    dict
        A state dict with exactly the target's keys (checkpoint tensors the target lacks, such
        as a self-supervised projection head, are dropped when every target key matched by name).

    Raises
    ------
    ValueError
        When neither name matching nor order-and-shape matching explains the checkpoint.
    """
    renamed = dict(source)
    if strip_prefix:
        # The prefix may be written with or without the DataParallel ``module.``.
        keys = list(renamed)
        if not any(k.startswith(strip_prefix) for k in keys):
            keys = [k.removeprefix("module.") for k in keys]
            renamed = dict(zip(keys, renamed.values(), strict=True))
        renamed = {
            k[len(strip_prefix) :]: v for k, v in renamed.items() if k.startswith(strip_prefix)
        }
        if not renamed:
            raise ValueError(
                f"no checkpoint key starts with strip_prefix {strip_prefix!r} (e.g. {list(source)[:3]})"
            )
    if renamed and all(k.startswith("module.") for k in renamed):
        renamed = {k.removeprefix("module."): v for k, v in renamed.items()}
    if set(target) <= set(renamed):
        mismatched = [k for k in target if renamed[k].shape != target[k].shape]
        if not mismatched:
            extra = sorted(set(renamed) - set(target))
            if extra:
                logger.info(
                    "ignoring %d checkpoint tensors the architecture lacks, e.g. %s",
                    len(extra),
                    extra[:5],
                )
            return {k: renamed[k] for k in target}
        detail = "; ".join(
            f"{k}: checkpoint {tuple(renamed[k].shape)} vs architecture {tuple(target[k].shape)}"
            for k in mismatched[:5]
        )
        raise ValueError(
            f"checkpoint shapes differ from the architecture for {len(mismatched)} tensor(s): {detail}"
        )
    if len(renamed) != len(target):
        missing = sorted(set(target) - set(renamed))[:5]
        raise ValueError(
            f"checkpoint has {len(renamed)} tensors, the architecture {len(target)}; names differ "
            f"(e.g. architecture expects {missing}) so they cannot be mapped"
        )
    # Same count, different names: map by position, the shapes vouching for the order.
    mapped: dict[str, torch.Tensor] = {}
    for position, ((src_key, tensor), (dst_key, expected)) in enumerate(
        zip(renamed.items(), target.items(), strict=True)
    ):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"positional mapping failed at tensor {position}: checkpoint {src_key!r} {tuple(tensor.shape)} "
                f"vs architecture {dst_key!r} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    logger.debug(
        "mapped %d checkpoint tensors onto the architecture by position and shape", len(mapped)
    )
    return mapped


def classifier_name(module: torch.nn.Module) -> str | None:
    """Name of the architecture's final classifier (timm's ``get_classifier()``, else the last Linear)."""
    head = module.get_classifier() if hasattr(module, "get_classifier") else None
    last_linear = None
    for name, child in module.named_modules():
        if head is not None and child is head:
            return name
        if isinstance(child, torch.nn.Linear):
            last_linear = name
    return None if head is not None else last_linear


def drop_classifier(module: torch.nn.Module, name: str) -> None:
    """Replace the classifier ``name`` by the identity, so that the network outputs its features."""
    if hasattr(module, "reset_classifier"):  # timm: also keeps the model's num_classes consistent
        module.reset_classifier(0)
        return
    parent, _, attribute = name.rpartition(".")
    setattr(module.get_submodule(parent), attribute, torch.nn.Identity())


def load_checkpoint_into(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], strip_prefix: str = ""
) -> None:
    """Load checkpoint tensors into ``module``, remapping keys (see :func:`remap_state_dict`).

    Self-supervised and CLIP checkpoints usually have no classifier: when the checkpoint explains
    every tensor of the architecture but its classifier, the classifier is replaced by the
    identity (rather than kept randomly initialised) and the network outputs its features.
    """
    target = module.state_dict()
    try:
        mapped = remap_state_dict(tensors, target, strip_prefix)
    except ValueError as error:
        head = classifier_name(module)
        headless = {k: v for k, v in target.items() if not (head and k.startswith(f"{head}."))}
        if len(headless) == len(target):
            raise
        try:
            mapped = remap_state_dict(tensors, headless, strip_prefix)
        except ValueError as headless_error:
            raise ValueError(
                f"{error}; without the classifier {head!r}: {headless_error}"
            ) from None
        drop_classifier(module, head or "")
        logger.info(
            "checkpoint has no classifier: %r replaced by the identity (the model outputs features)",
            head,
        )
    module.load_state_dict(mapped)


def build_architecture(
    arch: str, pretrained_tag: str | None = None
) -> tuple[torch.nn.Module, Transform]:
    """Build ``timm:<name>`` or ``torchvision:<name>`` randomly initialised, with its transform."""
    library, name = arch.split(":", 1)
    if library == "timm":
        return build_timm(name, pretrained=False)
    return build_torchvision(name, None)


def checkpoint_location(location: str, manifest: str) -> str:
    """The file a checkpoint location is read from, or why it cannot be (for messages)."""
    try:
        return str(checkpoint_path(location, manifest))
    except (ImportError, AttributeError, ValueError) as error:
        return f"{location} (cannot resolve: {error})"


def checkpoint_cached(location: str, manifest: str) -> bool:
    """Whether the checkpoint file is on this machine (a declared package file counts as local)."""
    if location.startswith("package:"):
        return True  # resolved (with a clear error) when loaded; never imported just to look
    return checkpoint_path(location, manifest).exists()


@register_source
class CheckpointSource(Source):
    name = "checkpoint"

    def load(self, entry: ModelEntry, pretrained: bool) -> tuple[torch.nn.Module, Transform]:
        module, transform = build_architecture(entry.arch or "")
        if not pretrained:
            return module, transform
        path = fetch_checkpoint(entry.name, entry.manifest)
        state = load_weights(path)
        tensors = unwrap_state_dict(state, entry.metadata.get("checkpoint_key"))
        load_checkpoint_into(module, tensors, entry.metadata.get("strip_prefix", ""))
        return module, transform

    def conwell2024_transform(
        self, entry: ModelEntry, transform: Transform, pretrained: bool
    ) -> Transform:
        # The architecture library's rule: timm's uncropped eval transform, or the torchvision
        # rule (the paper's VISSL and DINO checkpoints: Resize((224, 224)) + ImageNet statistics).
        if (entry.arch or "").startswith("timm:"):
            return uncropped(transform)
        return conwell2024_torchvision(pretrained)

    def download_hosts(self, entry: ModelEntry) -> tuple[str, ...]:
        return (url_host(entry.name),) if is_url(entry.name) else ()

    def cache_location(self, entry: ModelEntry) -> str:
        return checkpoint_location(entry.name, entry.manifest)

    def is_cached(self, entry: ModelEntry) -> bool:
        return checkpoint_cached(entry.name, entry.manifest)

    def library_versions(self) -> dict[str, str]:
        import timm
        import torchvision

        return {
            **super().library_versions(),
            "timm": timm.__version__,
            "torchvision": torchvision.__version__,
        }
