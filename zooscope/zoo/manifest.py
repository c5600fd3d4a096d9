"""Model manifests: CSV files with one row per model, parsed into validated :class:`ModelEntry`.

Every column is documented in ``manifests/README.md``. Validation collects *every* problem of a
file before raising one :class:`~zooscope.zoo.errors.ManifestError`, each problem located as
``file:line:column`` (``line`` is the 1-based line of the CSV file, the header being line 1), so
nothing runs on a bad manifest and a user fixes it in one pass.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zooscope.zoo.checkpoints import check_package_reference
from zooscope.zoo.errors import ManifestError

# Libraries, then the model families whose code lives in zooscope/zoo/sources/ (one module each).
SOURCES = (
    "torchvision",
    "timm",
    "open_clip",
    "transformers",
    "checkpoint",
    "taskonomy",
    "ipcl",
    "yolo",
    "midas",
)
FAMILY_SOURCES = ("taskonomy", "ipcl", "yolo", "midas")
ARCH_CLASSES = ("Convolutional", "Transformer", "MLP-Mixer", "Hybrid")
REQUIRED_COLUMNS = (
    "model_uid",
    "source",
    "name",
    "weights",
    "display_name",
    "arch_class",
    "task",
    "task_cluster",
    "train_data",
)
# Required columns whose value may be empty (e.g. a random-init model has no training data).
MAY_BE_EMPTY = frozenset({"task_cluster", "train_data"})
OPTIONAL_COLUMNS = (
    "train_data_size",
    "seed",
    "arch",
    "available",
    "unavailable_reason",
    "model_string",
    "notes",
)

_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ARCH = re.compile(r"^(timm|torchvision):[A-Za-z0-9_\-]+$")
# What a well-formed weights tag looks like for each source ("random" is valid everywhere).
_WEIGHTS = {
    "torchvision": (
        re.compile(r"^[A-Z][A-Z0-9_]*$"),
        "a weights enum member such as IMAGENET1K_V1 or DEFAULT",
    ),
    "timm": (
        re.compile(r"^[a-z0-9][a-z0-9_]*$"),
        "a timm pretrained tag such as in1k or augreg_in21k, or 'default'",
    ),
    "open_clip": (
        re.compile(r"^[a-z0-9][a-z0-9_.\-]*$"),
        "an open_clip pretrained tag such as openai or laion2b_s34b_b79k",
    ),
    "transformers": (re.compile(r"^pretrained$"), "'pretrained'"),
    "checkpoint": (re.compile(r"^pretrained$"), "'pretrained'"),
    **{family: (re.compile(r"^pretrained$"), "'pretrained'") for family in FAMILY_SOURCES},
}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass(frozen=True)
class ModelEntry:
    """One validated manifest row.

    Attributes
    ----------
    model_uid : str
        Unique identifier within the manifest (and the results database).
    source : str
        One of :data:`SOURCES`.
    name : str
        The source's own identifier (for ``checkpoint``: the checkpoint location).
    weights : str
        The source's pretrained tag, ``"pretrained"``, or ``"random"`` for a seeded random init.
    seed : int
        Seed of the random initialisation (used when ``weights == "random"``).
    arch : str or None
        ``"timm:<name>"`` or ``"torchvision:<name>"``: the architecture a checkpoint loads into.
    available : bool
        False for rows kept for completeness whose weights need a library zooscope lacks.
    metadata : dict
        Every other column (``compare_*`` contrasts, ``model_string``, notes, ...), as strings.
    manifest : str
        Path of the manifest file the row came from.
    line : int
        1-based line of the row in that file.
    """

    model_uid: str
    source: str
    name: str
    weights: str
    display_name: str
    arch_class: str
    task: str
    task_cluster: str = ""
    train_data: str = ""
    train_data_size: int | None = None
    seed: int = 0
    arch: str | None = None
    available: bool = True
    unavailable_reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    manifest: str = ""
    line: int = 0

    @property
    def is_random(self) -> bool:
        """True when the model is built with a seeded random initialisation."""
        return self.weights == "random"

    @property
    def model_string(self) -> str:
        """Conwell et al.'s identifier when the manifest has one, else the uid."""
        return self.metadata.get("model_string") or self.model_uid

    def to_record(self) -> dict[str, Any]:
        """Flat dictionary of every column (metadata included), e.g. for the results database."""
        record = {
            k: getattr(self, k)
            for k in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
            if k not in ("model_string", "notes")
        }
        record.update(self.metadata)
        record["manifest"] = self.manifest
        return record


def _parse_row(row: dict[str, str], where: str) -> tuple[dict[str, Any], list[str]]:
    """Check one row's values; return the parsed fields and the problems found.

    Every problem of the row is reported at once (``file:line:column: message``), the rules that
    read several columns included; hence plain checks rather than a pydantic row model, which
    runs its cross-column checks only once every column passed its own.
    """
    problems: list[str] = []

    def bad(column: str, message: str) -> None:
        problems.append(f"{where}:{column}: {message}")

    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    _check_names(values, bad)
    _check_weights_and_locations(values, bad)
    seed = _whole_number(values, "seed", 0, bad)
    train_data_size = _whole_number(values, "train_data_size", None, bad)
    available = _availability(values, bad)
    known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    metadata = {k: v for k, v in values.items() if k not in known or k in ("model_string", "notes")}
    metadata = {k: v for k, v in metadata.items() if v}
    fields = {
        "model_uid": values.get("model_uid", ""),
        "source": values.get("source", ""),
        "name": values.get("name", ""),
        "weights": values.get("weights", ""),
        "display_name": values.get("display_name", ""),
        "arch_class": values.get("arch_class", ""),
        "task": values.get("task", ""),
        "task_cluster": values.get("task_cluster", ""),
        "train_data": values.get("train_data", ""),
        "train_data_size": train_data_size,
        "seed": seed or 0,
        "arch": values.get("arch") or None,
        "available": available,
        "unavailable_reason": values.get("unavailable_reason", ""),
        "metadata": metadata,
    }
    return fields, problems


def _check_names(values: dict[str, str], bad: Any) -> None:
    """Required columns filled; uid, source, architecture class and timm name well formed."""
    for column in REQUIRED_COLUMNS:
        if column in values and not values[column] and column not in MAY_BE_EMPTY:
            bad(column, "must not be empty")
    uid = values.get("model_uid", "")
    if uid and not _UID.match(uid):
        bad(
            "model_uid",
            f"expected letters, digits, '_', '.', '-' (starting with a letter or digit), got {uid!r}",
        )
    source = values.get("source", "")
    if source and source not in SOURCES:
        bad("source", f"expected one of {', '.join(SOURCES)}, got {source!r}")
    arch_class = values.get("arch_class", "")
    if arch_class and arch_class not in ARCH_CLASSES:
        bad("arch_class", f"expected one of {', '.join(ARCH_CLASSES)}, got {arch_class!r}")


def _check_weights_and_locations(values: dict[str, str], bad: Any) -> None:
    """Weights as the source names them; a checkpoint row's architecture; declared locations."""
    source, weights = values.get("source", ""), values.get("weights", "")
    if weights and source in _WEIGHTS and weights != "random":
        pattern, expected = _WEIGHTS[source]
        if not pattern.match(weights):
            bad("weights", f"expected 'random' or {expected} for source {source}, got {weights!r}")
    name = values.get("name", "")
    if source == "timm" and "." in name:
        bad(
            "name",
            f"expected a timm model name without a pretrained tag (put {name.split('.', 1)[1]!r} in the weights column), got {name!r}",
        )

    arch = values.get("arch") or None
    # An unavailable row never loads, so it needs no architecture (some have none in timm/torchvision).
    unavailable = values.get("available", "").lower() in _FALSE - {""}
    if source == "checkpoint":
        if not arch and not unavailable:
            bad(
                "arch",
                "checkpoint rows need the architecture to load into, as timm:<name> or torchvision:<name>",
            )
        elif arch and not _ARCH.match(arch):
            bad("arch", f"expected timm:<name> or torchvision:<name>, got {arch!r}")

    # A manifest is data: a package: reference must be declared before anything may import it.
    location_columns = ("name", "checkpoint") if source == "checkpoint" else ("checkpoint",)
    for column in location_columns:
        problem = check_package_reference(values.get(column, ""))
        if problem:
            bad(column, problem)
    needs_checkpoint = source in FAMILY_SOURCES and weights not in ("", "random")
    if needs_checkpoint and not values.get("checkpoint") and not unavailable:
        bad(
            "checkpoint",
            f"{source} rows with trained weights need the checkpoint's location (URL or file)",
        )


def _whole_number(values: dict[str, str], column: str, default: int | None, bad: Any) -> int | None:
    """A non-negative whole number: digits, or a float that is one (sizes are often 1.2e9)."""
    text = values.get(column, "")
    if not text:
        return default
    try:
        number = float(text)
        if number < 0 or not number.is_integer():
            raise ValueError
        return int(text) if text.isdigit() else int(number)
    except ValueError:
        bad(column, f"expected a non-negative integer, got {text!r}")
        return default


def _availability(values: dict[str, str], bad: Any) -> bool:
    """``available`` (default true); an unavailable row must say why."""
    available_text = values.get("available", "").lower()
    available = True
    if available_text in _FALSE - {""}:
        available = False
    elif available_text and available_text not in _TRUE:
        bad("available", f"expected true or false, got {values.get('available')!r}")
    if not available and not values.get("unavailable_reason"):
        bad("unavailable_reason", "rows with available=false must say why")
    return available


def _rows(reader: csv.DictReader, path: str) -> Iterable[dict[str, Any]]:
    """The reader's rows; malformed CSV (an unclosed quote, text after a closing quote) raises
    a :class:`ManifestError` naming the line where the bad row starts."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            why = (
                'a quote (") opened on this line is never closed'
                if "end of data" in str(error)
                else f"not valid CSV ({error})"
            )
            raise ManifestError(
                path, [f'{path}:{start}:-: {why}; quote a field containing commas as "a, b"']
            ) from None
        yield row


def parse_manifest(lines: Iterable[str], path: str = "<manifest>") -> list[ModelEntry]:
    """Parse and validate manifest CSV text.

    Parameters
    ----------
    lines : iterable of str
        The CSV text, header first.
    path : str
        Name used in error messages and recorded in each entry.

    Returns
    -------
    list of ModelEntry

    Raises
    ------
    ManifestError
        Listing every problem as ``file:line:column: what was expected``.
    """
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise ManifestError(
            path, [f"{path}:1:-: the header line is not valid CSV ({error})"]
        ) from None
    if not header:
        raise ManifestError(
            path,
            [
                f"{path}:1:-: the file is empty; a manifest needs a header line "
                f"({','.join(REQUIRED_COLUMNS)}) and one row per model (manifests/README.md)"
            ],
        )
    problems: list[str] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    for column in missing:
        problems.append(f"{path}:1:{column}: required column is missing from the header")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    for column in duplicated:
        problems.append(f"{path}:1:{column}: column appears more than once in the header")

    entries: list[ModelEntry] = []
    first_line: dict[str, int] = {}
    for row in _rows(reader, path):
        line = reader.line_num
        if not any((v or "").strip() for k, v in row.items() if k is not None):
            continue  # blank line
        if None in row:
            problems.append(f"{path}:{line}:-: row has more fields than the header")
        fields, row_problems = _parse_row(row, f"{path}:{line}")
        problems.extend(row_problems)
        uid = fields["model_uid"]
        if uid in first_line:
            problems.append(
                f"{path}:{line}:model_uid: duplicate uid {uid!r} (first on line {first_line[uid]})"
            )
        elif uid:
            first_line[uid] = line
        if not row_problems and not missing:
            entries.append(ModelEntry(**fields, manifest=path, line=line))
    if not first_line and not problems:
        problems.append(f"{path}:2:-: manifest has no model rows")
    if problems:
        raise ManifestError(path, problems)
    return entries


def manifest_dir() -> Path:
    """Folder of the built-in manifests (``$ZOOSCOPE_MANIFESTS`` or the repository's ``manifests/``)."""
    env = os.environ.get("ZOOSCOPE_MANIFESTS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "manifests"


def resolve_manifest(path_or_name: str | os.PathLike[str]) -> Path:
    """Resolve a manifest path, or the name of a built-in manifest such as ``"demo"``.

    The rule: a bare name (no folder part, no ``.csv`` suffix) that names a built-in manifest is
    that built-in manifest, whatever the working folder holds (``zooscope demo --out demo``
    creates a folder ``demo``); anything else is a file path. Write ``./demo`` for a local file
    named like a built-in manifest.
    """
    text = str(path_or_name)
    path = Path(path_or_name)
    builtin = manifest_dir() / f"{path.name.removesuffix('.csv')}.csv"
    bare = len(path.parts) == 1 and path.suffix == "" and not text.startswith(".")
    if bare and builtin.is_file():
        return builtin
    if path.is_file():
        return path
    if path.exists():
        raise IsADirectoryError(
            f"manifest {text!r} is a folder; give a CSV file (one row per model)"
        )
    raise FileNotFoundError(f"manifest {text!r} not found (also looked for the built-in {builtin})")


def load_manifest(path: str | os.PathLike[str]) -> list[ModelEntry]:
    """Read and validate a manifest file (or a built-in manifest by name, e.g. ``"demo"``).

    Parameters
    ----------
    path : str or path-like
        A CSV file, or the name of a manifest in ``manifests/``.

    Returns
    -------
    list of ModelEntry
        One per row, in file order.

    Raises
    ------
    ManifestError
        If anything in the file is malformed; nothing is returned for a bad manifest.
    """
    resolved = resolve_manifest(path)
    shown = str(resolved if resolved.parent == manifest_dir() else path)
    try:
        with open(resolved, newline="", encoding="utf-8") as handle:
            return parse_manifest(handle, shown)
    except UnicodeDecodeError as error:
        line = resolved.read_bytes()[: error.start].count(b"\n") + 1
        raise ManifestError(
            shown,
            [
                f"{shown}:{line}:-: not UTF-8 text (byte {error.object[error.start : error.start + 1]!r}); save the file as UTF-8"
            ],
        ) from None


def find_entry(
    entries: Iterable[ModelEntry], model_uid: str, manifest: str | os.PathLike[str] = "the manifest"
) -> ModelEntry:
    """Return the entry ``model_uid`` among ``entries`` (of the manifest named ``manifest``).

    Raises
    ------
    KeyError
        With up to five similar uids as a hint.
    """
    entries = list(entries)
    for entry in entries:
        if entry.model_uid == model_uid:
            return entry
    close = [e.model_uid for e in entries if model_uid.lower() in e.model_uid.lower()][:5]
    hint = f"; similar: {', '.join(close)}" if close else ""
    raise KeyError(f"no model {model_uid!r} in manifest {manifest}{hint}")


def get_entry(model_uid: str, manifest: str | os.PathLike[str] = "demo") -> ModelEntry:
    """Return the entry ``model_uid`` of a manifest (default: the built-in demo manifest)."""
    return find_entry(load_manifest(manifest), model_uid, manifest)
