"""Every option of every command is checked before the command does any work.

Each command takes ``ctx: typer.Context`` and calls :func:`check_options` first, which reads
the command's parsed options from the context and applies one rule per option name
(``--batch-size`` means the same everywhere, so it is checked the same everywhere; :data:`RULES`),
or a rule for one command's option where the name means something else there
(:data:`COMMAND_RULES`); then the command's checks that
involve several options (:data:`CROSS_CHECKS`: a device on remote workers, outputs that must
not be inputs, ...). ``tests/test_cli_validation.py`` fails when a command has an option that
no rule covers and that is not listed as free text in :data:`UNCHECKED`.

A failed check raises :class:`~zooscope.validation.OptionError`: one or two lines, exit code 2,
before any file is written or model loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from zooscope.cli.vocabulary import warn_renamed
from zooscope.validation import (
    OptionError,
    check_byte_size,
    check_choice,
    check_device,
    check_env_number,
    check_number,
    check_outputs_apart,
    check_regex,
    check_walltime,
    check_workers,
    machine,
)

__all__ = ["COMMAND_RULES", "CROSS_CHECKS", "ENVIRONMENT", "RULES", "UNCHECKED", "check_options"]

Rule = Callable[[Any, str, Mapping[str, Any]], Any]


def _at_least(minimum: float, maximum: float | None = None) -> Rule:
    return lambda value, flag, _params: check_number(value, flag, minimum, maximum)


def _choice(*choices: str) -> Rule:
    return lambda value, flag, _params: check_choice(value, flag, choices)


def _metrics(allowed: tuple[str, ...] | None = None) -> Rule:
    def rule(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
        # lazy: `zooscope --help` stays fast
        from zooscope.metrics import metric_names

        for metric in [m.strip() for m in (value or "").split(",") if m.strip()] or [None]:
            check_choice(metric, flag, allowed or metric_names())

    return rule


def _choice_of(module: str, name: str) -> Rule:
    """A choice among the names a library module defines (imported when the rule runs)."""

    def rule(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
        import importlib

        check_choice(value, flag, tuple(getattr(importlib.import_module(module), name)))

    return rule


def _remote(params: Mapping[str, Any]) -> bool:
    """The models of this command run on other machines (Slurm jobs, an existing scheduler)."""
    return bool(params.get("slurm") or params.get("slurm_dry_run") or params.get("scheduler"))


def _device(value: str | None, flag: str, params: Mapping[str, Any]) -> None:
    check_device(value, flag, local=not _remote(params))


def _memory_budget(value: str | None, flag: str, params: Mapping[str, Any]) -> None:
    if params.get("scheduler"):  # an existing cluster: its machines are unknown here
        check_byte_size(value, flag)
    elif params.get("slurm") or params.get("slurm_dry_run"):
        from dask.utils import parse_bytes

        try:
            job = parse_bytes(params["slurm_memory"])
        except (ValueError, TypeError):  # --slurm-memory's own rule says so
            job = None
        check_byte_size(value, flag, maximum=job, where="each Slurm job (--slurm-memory)")
    else:
        check_byte_size(value, flag, maximum=machine().memory)


def _slurm_memory(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
    from dask.utils import parse_bytes

    try:
        size = parse_bytes(value) if value is not None else None
    except (ValueError, TypeError):
        size = None
    if value is not None and not size:
        raise OptionError(f"{flag} {value!r}: not a memory size\n  give e.g. 32GB or 8000MB")


def _subject_numbers(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
    for part in [p.strip() for p in (value or "").split(",") if p.strip()]:
        if not part.isdigit() or int(part) < 1:
            raise OptionError(f"{flag} {value!r}: give subject numbers 1 or more, e.g. 1,2")


def _subject_list(value: list[int] | None, flag: str, _params: Mapping[str, Any]) -> None:
    for subject in value or ():
        check_number(subject, flag, 1)


def _volume(value: tuple[int, ...] | None, flag: str, _params: Mapping[str, Any]) -> None:
    for side in value or ():
        check_number(side, flag, 1, 4096)


def _weights(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
    if value not in (None, "random"):
        raise OptionError(
            f"{flag} {value!r}: only 'random' is allowed (leave it out for the manifest's weights)"
        )


def _database(value: Path | None, flag: str, _params: Mapping[str, Any]) -> None:
    if value is not None and Path(value).is_dir():
        raise OptionError(
            f"{flag} {value}: is a folder\n  give the results database file, e.g. {Path(value) / 'results.duckdb'}"
        )


def _one_name(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
    names = [name for name in (value or "").split(",") if name.strip()]
    if len(names) > 1:
        raise OptionError(
            f"{flag} {value!r}: this command shows one ROI; give one, e.g. {names[0]}"
        )


def _background(value: str | None, flag: str, _params: Mapping[str, Any]) -> None:
    # lazy: `zooscope --help` stays fast
    from zooscope.pixels import parse_background

    parse_background(value, flag)


#: Rules by option name, for every command that has the option.
RULES: dict[str, Rule] = {
    "batch_size": _at_least(1),
    "memory_budget": _memory_budget,
    "device": _device,
    "layers": lambda value, flag, _p: check_regex(value, flag),
    "n_sims": _at_least(1),
    "n_boot": _at_least(1),
    "seed": _at_least(0),
    "top": _at_least(0),
    "fmt": _choice("table", "csv"),
    "eps": lambda value, flag, _p: check_number(value, flag, 0, 1, above=True, below=True),
    "n_components": _at_least(1),
    "max_depth": _at_least(0),
    "image_size": _at_least(1, 8192),
    "n_images": _at_least(2),
    "n_sessions": _at_least(1),
    "volume_shape": _volume,
    "random_features": _at_least(0),
    "rsm_from": _choice("full", "srp"),
    "srp_mode": _choice("fast", "sklearn"),
    "regression": _choice_of("zooscope.rsa.predictivity", "REGRESSIONS"),
    "splits": _choice_of("zooscope.rsa.predictivity", "PREDICTIVITY_SPLITS"),
    "profile": _choice_of("zooscope.profiles", "PROFILES"),
    "metrics": _metrics(),
    "metric": _metrics(),
    "level": _choice("model", "subject"),
    "depth": _at_least(0, 1),
    "n_clusters": _at_least(1),
    "sample": _at_least(1),
    "weights": _weights,
    "db": _database,
    "ncsnr_threshold": lambda value, flag, _p: check_number(value, flag),
    "beta_format": _choice("auto", "hdf5", "nii.gz"),
    "max_image_pixels": _at_least(0),
    "alpha_background": _background,
    "slurm_jobs": _at_least(1),
    "slurm_cores": _at_least(1),
    "slurm_gpus": _at_least(0),
    "slurm_timeout": _at_least(0),
    "slurm_memory": _slurm_memory,
    "slurm_walltime": lambda value, flag, _p: check_walltime(value, flag),
    "pca_components": _at_least(1),
    "activations_dtype": _choice("float32", "float64"),
    "degrees": lambda value, flag, _p: check_number(value, flag, 0, 360, above=True),
    # Dask worker processes (survey); DataLoader processes are --loader-workers
    "workers": lambda value, flag, params: check_workers(
        value, check_byte_size(params.get("memory_budget"), "--memory-budget"), flag
    ),
    "loader_workers": lambda value, flag, _p: check_number(
        value, flag, 0, machine().cores, hint="DataLoader worker processes: at most one per core"
    ),
    "stats_model": _choice("groups", "pairwise", "ols", "mixed"),
    "file_format": _choice("parquet", "csv"),
    "image_set": _choice("shared1000"),
}

#: Rules for an option whose name means something else in one command.
COMMAND_RULES: dict[tuple[str, str], Rule] = {
    ("report", "rois"): _one_name,
    ("analyze contrast", "level"): _choice("auto", "subject", "model"),
    ("analyze similarity", "metric"): _metrics(("crsa", "versa")),
    ("analyze unique-variance", "metric"): _metrics(("encoding_r", "versa", "predictivity")),
    ("demo", "subjects"): _subject_numbers,
    ("demo", "n_images"): _at_least(8),
    ("benchmark import-brainio", "image_size"): _at_least(0, 8192),  # 0: the images' own size
    ("nsd synth", "subjects"): _subject_list,
    ("nsd prepare", "subjects"): _subject_list,
}

#: Options whose value is free text, a path that click checks itself, a flag, or a name looked
#: up by the command with its own precise message (a manifest, a model uid, a column, ...).
UNCHECKED = frozenset(
    {
        "manifest", "benchmark", "benchmark_key", "models", "subjects", "rois", "roi", "retry_failed",
        "ceilings", "scheduler", "slurm", "slurm_queue", "slurm_extra", "slurm_log_dir",
        "slurm_interface", "slurm_dry_run", "verify", "keep_grams", "model", "images", "out",
        "module_type", "amp", "progress", "report", "neural", "published", "pair_by",
        "contrast", "summary", "source", "available_only", "uid", "load", "forward",
        "root", "beta_version", "nsd_root", "layer", "path", "assembly", "stimuli", "time_bins",
        "directory", "file", "model_col", "score_col", "metric_col", "subject_col", "metric_map",
        "by", "groups", "x", "control", "run", "estimate", "commit_on", "pca_images",
        "commit_time_bin",
    }
)  # fmt: skip


Flags = Callable[[str], str]


def _inputs(params: Mapping[str, Any], flag: Flags, *names: str) -> dict[str, Any]:
    """The options among ``names`` naming files or folders that exist (a manifest may be a name)."""
    return {
        flag(name): params[name]
        for name in names
        if params.get(name) is not None and Path(str(params[name])).exists()
    }


def _survey(params: Mapping[str, Any], flag: Flags) -> None:
    device = params.get("device") or ""
    slurm = params.get("slurm") or params.get("slurm_dry_run")
    if slurm and params.get("slurm_gpus", 0) < 1 and device.startswith("cuda"):
        raise OptionError(
            f"--device {device} with --slurm: the jobs ask for no GPU\n"
            "  add --slurm-gpus 1 (or run on --device cpu)"
        )
    if params.get("db") is not None:
        # lazy: `zooscope --help` stays fast
        from zooscope.results.grams import grams_path

        db = Path(params["db"])
        outputs = {"--db": db, "the log next to --db": db.with_suffix(".log"),
                   "the Gram store next to --db": grams_path(db)}  # fmt: skip
        check_outputs_apart(outputs, _inputs(params, flag, "benchmark", "manifest"))
        store = grams_path(db)
        if params.get("keep_grams") and store.is_file():
            import h5py

            if not h5py.is_hdf5(store):
                # lazy: `zooscope --help` stays fast
                from zooscope.errors import InputFileError

                raise InputFileError(
                    store, "the Gram store next to --db (HDF5)", "not an HDF5 file",
                    "move it away (a new store is created), or use another --db",
                )  # fmt: skip


def _outputs_apart(output: str, *inputs: str) -> Callable[[Mapping[str, Any], Flags], None]:
    def check(params: Mapping[str, Any], flag: Flags) -> None:
        check_outputs_apart({flag(output): params.get(output)}, _inputs(params, flag, *inputs))

    return check


def _synthetic_root(params: Mapping[str, Any], flag: Flags) -> None:
    """``nsd synth`` writes a whole tree: only into a new, empty or earlier synthetic folder."""
    # lazy: `zooscope --help` stays fast
    from zooscope.nsd.synthetic import TRUTH_JSON

    out = Path(params["out"])
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / TRUTH_JSON).exists()):
        raise OptionError(
            f"{flag('out')} {out}: holds other files, and a synthetic NSD tree would be written "
            "over them\n  give a new or empty folder (or one an earlier nsd synth wrote)"
        )


#: Checks involving several options, by command.
CROSS_CHECKS: dict[str, tuple[Callable[[Mapping[str, Any], Flags], None], ...]] = {
    "survey": (_survey,),
    "ceiling": (_outputs_apart("db", "benchmark"),),
    "extract": (_outputs_apart("out", "images"),),
    "benchmark import-brainio": (_outputs_apart("out", "assembly", "stimuli", "images"),),
    "nsd prepare": (_outputs_apart("out", "nsd_root"),),
    "nsd synth": (_synthetic_root,),
    "import-scores csv": (_outputs_apart("db", "file"),),
    "import-scores conwell2024": (_outputs_apart("db", "directory"),),
    "results export": (_outputs_apart("out", "db"),),
    "report": (_outputs_apart("out", "db", "published"),),
    "analyze similarity": (_outputs_apart("out", "db", "published"),),
    "analyze layer-cka": (_outputs_apart("db", "benchmark"),),
}

#: Environment variables read by the commands, and their smallest value.
ENVIRONMENT = {"ZOOSCOPE_DB_TIMEOUT": (0.0, False), "ZOOSCOPE_LEASE_SECONDS": (0.0, True),
               "ZOOSCOPE_MAX_IMAGE_PIXELS": (0.0, False)}  # fmt: skip


def _flag(command: Any, name: str) -> str:
    """How the user wrote option ``name``: its longest flag, or the argument's name in capitals."""
    for param in getattr(command, "params", ()):
        if param.name == name:
            flags = [opt for opt in param.opts if opt.startswith("-")]
            return max(flags, key=len) if flags else name.upper()
    return f"--{name.replace('_', '-')}"


def check_options(ctx: Any) -> None:
    """Check every option of the command that ``ctx`` runs, before it does any work.

    Parameters
    ----------
    ctx : typer.Context
        The running command's context (a command takes ``ctx: typer.Context``); its
        ``command_path`` picks the rules and ``params`` holds the parsed options.

    Raises
    ------
    OptionError
        The first bad value (or environment variable), naming it: one or two lines, exit code 2.
    """
    warn_renamed(ctx)
    path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
    params = ctx.params

    def flag(name: str) -> str:
        return _flag(ctx.command, name)

    for name, (minimum, above) in ENVIRONMENT.items():
        check_env_number(name, minimum, above)
    for name, value in params.items():
        rule = COMMAND_RULES.get((path, name)) or RULES.get(name)
        if rule is not None and value is not None:
            rule(value, flag(name), params)
    for check in CROSS_CHECKS.get(path, ()):
        check(params, flag)
