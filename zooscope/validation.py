"""Checks of option values, made before any work starts: one clear line, exit code 2.

A bad value that reached a model would be recorded as that model's failure (and a later run
would skip the model); a bad value that reached a writer could overwrite an input. So every
command checks its options first (:mod:`zooscope.cli.validation` applies these functions to
every option of every command), and :func:`zooscope.pipeline.survey.survey` checks its
:class:`~zooscope.pipeline.scoring.RunOptions` before it records a run.

Each check raises :class:`OptionError` (a :class:`~zooscope.errors.ZooscopeError`, so the CLI
prints it without a traceback and exits with code 2) whose message names the option, the value
given, what is expected and, where useful, what to do.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zooscope.errors import ZooscopeError
from zooscope.runtime import parse_bytes

__all__ = [
    "MIN_MEMORY_BUDGET",
    "WORKER_MEMORY",
    "Machine",
    "OptionError",
    "check_byte_size",
    "check_choice",
    "check_device",
    "check_env_number",
    "check_number",
    "check_outputs_apart",
    "check_regex",
    "check_run_options",
    "check_walltime",
    "check_workers",
    "machine",
]

#: The smallest ``--memory-budget`` taken: below it no model's forward pass fits.
MIN_MEMORY_BUDGET = 16 * 2**20
#: Memory one survey worker needs besides its extraction budget (torch, a loaded model, the
#: benchmark's responses); a machine holds at most ``memory // (budget + WORKER_MEMORY)`` workers.
WORKER_MEMORY = 2 * 2**30


class OptionError(ZooscopeError, ValueError):
    """An option (or environment variable) has a value that cannot work; nothing was done."""


def _fail(option: str, value: Any, problem: str, hint: str = "") -> OptionError:
    message = f"{option} {value}: {problem}"
    return OptionError(f"{message}\n  {hint}" if hint else message)


@dataclass(frozen=True)
class Machine:
    """What this machine offers a run: usable CPU cores and memory (bytes)."""

    cores: int
    memory: int

    def describe(self) -> str:
        return f"{self.cores} CPU core(s) and {self.memory / 1e9:.1f} GB of memory"


def _cgroup_memory_limit() -> int | None:
    """The memory limit of this process's cgroup (containers, Slurm jobs), if any."""
    for name in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def machine() -> Machine:
    """Cores this process may run on and memory it may use (cgroup limits included)."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = int(psutil.virtual_memory().total)
    limit = _cgroup_memory_limit()
    return Machine(max(1, cores or 1), min(memory, limit) if limit else memory)


def check_number(
    value: float | None,
    option: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    above: bool = False,
    below: bool = False,
    hint: str = "",
) -> float | None:
    """``value`` if it is finite and within the bounds (``above``/``below``: strictly), else raise.

    Parameters
    ----------
    value : number or None
        None passes (an option left at its "not given" default).
    option : str
        The flag, e.g. ``"--batch-size"``.
    minimum, maximum : number, optional
    above, below : bool
        Exclude the bound itself.
    hint : str
        What to do, printed on a second line.

    Returns
    -------
    number or None
    """
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(option, value, "must be a finite number", hint)
    low_ok = minimum is None or (value > minimum if above else value >= minimum)
    high_ok = maximum is None or (value < maximum if below else value <= maximum)
    if low_ok and high_ok:
        return value
    if minimum is not None and maximum is not None:
        expected = f"must lie between {minimum:g} and {maximum:g}"
        expected += (
            " (both excluded)" if above and below else " (excluded)" if above or below else ""
        )
    elif minimum is not None:
        expected = f"must be {'more than' if above else 'at least'} {minimum:g}"
    else:
        expected = f"must be {'less than' if below else 'at most'} {maximum:g}"
    raise _fail(option, value, expected, hint)


def check_choice(value: str | None, option: str, choices: Iterable[str]) -> str | None:
    """``value`` if it is one of ``choices`` (None passes), else raise naming them."""
    choices = tuple(choices)
    if value is None or value in choices:
        return value
    raise _fail(option, repr(value), f"must be one of {', '.join(choices)}")


def check_regex(pattern: str | None, option: str) -> str | None:
    """``pattern`` if it compiles as a Python regular expression, else raise with the position."""
    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except re.error as error:
        raise _fail(
            option,
            repr(pattern),
            f"not a valid regular expression ({error})",
            "quote it for the shell, e.g. --layers '^layer4\\.' (docs: Python's re module)",
        ) from None
    return pattern


def check_byte_size(
    text: str | int | None,
    option: str,
    minimum: int = MIN_MEMORY_BUDGET,
    maximum: int | None = None,
    where: str = "this machine",
) -> int | None:
    """Bytes of a size such as ``4GB`` or ``512MiB``, positive and plausible, else raise.

    Parameters
    ----------
    text : str, int or None
        None passes.
    option : str
    minimum : int
        Smallest plausible value in bytes.
    maximum : int, optional
        Largest plausible value (e.g. the machine's memory).
    where : str
        What ``maximum`` is, for the message.

    Returns
    -------
    int or None
    """
    if text is None:
        return None
    try:
        size = parse_bytes(text.strip() if isinstance(text, str) else text)
    except ValueError:
        raise _fail(
            option,
            repr(text),
            "not a memory size",
            "give a positive number with a unit: 512MB, 4GB, 2GiB (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)",
        ) from None
    if size < minimum:
        raise _fail(
            option,
            text,
            f"too small: at least {minimum / 2**20:.0f} MiB is needed",
            "no model's forward pass fits in less; give e.g. 2GB",
        )
    if maximum is not None and size > maximum:
        raise _fail(
            option,
            text,
            f"more than the {maximum / 1e9:.1f} GB of memory of {where}",
            "give at most what the machine that runs the extraction has",
        )
    return size


_DEVICE = re.compile(r"(auto|cpu|mps|cuda)(?::(\d+))?")


def check_device(device: str | None, option: str = "--device", local: bool = True) -> str | None:
    """``device`` if it is well formed and, when ``local``, available in this process.

    Parameters
    ----------
    device : str or None
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    option : str
    local : bool
        Also check that the device exists here (False when remote workers will run the models).

    Returns
    -------
    str or None
    """
    if device is None:
        return None
    match = _DEVICE.fullmatch(device)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise _fail(option, repr(device), "must be auto, cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    if not local or kind in ("auto", "cpu"):
        return device
    import torch

    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise _fail(option, device, "no Apple MPS device here", "use --device cpu (or auto)")
        return device
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    if not torch.cuda.is_available():
        built = (
            f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        )
        raise _fail(
            option,
            device,
            f"no CUDA GPU is available to this process (torch {torch.__version__}, {built}{where})",
            "use --device cpu (or auto, which takes a GPU when there is one)",
        )
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise _fail(
            option,
            device,
            f"this process sees {count} CUDA device(s): cuda:0 to cuda:{count - 1}{where}",
        )
    return device


def check_workers(
    workers: int | None, budget: int | None = None, option: str = "--workers", what: str = "Dask"
) -> int | None:
    """``workers`` if this machine can run that many local workers, each scoring one model.

    Parameters
    ----------
    workers : int or None
    budget : int, optional
        Each worker's extraction budget in bytes (``--memory-budget``).
    option, what : str
        For the message.

    Returns
    -------
    int or None

    Notes
    -----
    A worker runs one model at a time on one thread and needs :data:`WORKER_MEMORY` plus its
    budget; more workers than cores only compete for them, and more than the memory holds are
    restarted by Dask until the model is given up (``KilledWorker``). The value is refused, not
    lowered: the message says the largest number that fits.
    """
    if workers is None:
        return None
    if workers < 1:
        raise _fail(option, workers, f"must be 1 or more (the number of local {what} workers)")
    box = machine()
    per_worker = WORKER_MEMORY + (budget or 0)
    fits = max(0, min(box.cores, box.memory // per_worker))
    if workers > fits:
        need = f"{per_worker / 1e9:.1f} GB"
        raise _fail(
            option,
            workers,
            f"more than this machine can run: {box.describe()} hold {fits} worker(s) "
            f"(one core and about {need} each)",
            f"use --workers {max(fits, 1)} or fewer, a smaller --memory-budget, or more machines "
            "(--scheduler, --slurm)",
        )
    return workers


_WALLTIME = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def check_walltime(text: str | None, option: str) -> str | None:
    """A Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``), else raise."""
    if text is None:
        return None
    match = _WALLTIME.fullmatch(text.strip())
    ok = match is not None
    if match is not None:
        days, first, second, third = match.groups()
        ok = all(int(v) < 60 for v in (second, third) if v is not None)
        ok = ok and (days is None or int(first) < 24)
        ok = ok and any(int(v) for v in match.groups() if v is not None)
    if not ok:
        raise _fail(
            option,
            repr(text),
            "not a Slurm time limit",
            "give HH:MM:SS, MM, MM:SS or D-HH:MM:SS with minutes and seconds below 60, e.g. 04:00:00",
        )
    return text


def check_env_number(name: str, minimum: float = 0.0, above: bool = False) -> float | None:
    """The number in environment variable ``name`` (None when unset), checked like an option."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise _fail(name, repr(text), "must be a number") from None
    check_number(value, name, minimum, above=above)
    return value


def _collision(path: Path, other: Path) -> str | None:
    """How writing ``path`` would touch ``other``: "is" (the same file or folder, symlinks
    resolved), "is inside" (an existing file in the folder ``other``), or None."""
    try:
        if path.exists() and other.exists() and os.path.samefile(path, other):
            return "is"
    except OSError:
        pass
    resolved, resolved_other = path.resolve(), other.resolve()
    if resolved == resolved_other:
        return "is"
    if path.is_file() and other.is_dir() and resolved.is_relative_to(resolved_other):
        return "is inside"
    return None


def check_outputs_apart(
    outputs: Mapping[str, str | os.PathLike[str] | None],
    inputs: Mapping[str, str | os.PathLike[str] | None],
) -> None:
    """Refuse an output that is one of the inputs, or an existing file inside an input folder.

    Symlinks are resolved, so a link to an input is that input. A new file inside an input folder
    is allowed (it overwrites nothing the command reads).

    Parameters
    ----------
    outputs, inputs : mapping of option name to path (None: not given)
        E.g. ``{"--out": out}`` and ``{"ASSEMBLY": assembly, "--images": images}``.

    Raises
    ------
    OptionError
        Naming both options and paths: a command never writes to a path it reads from.
    """
    for out_name, out in outputs.items():
        if out is None:
            continue
        for in_name, source in inputs.items():
            if source is None:
                continue
            how = _collision(Path(out), Path(source))
            if how is not None:
                raise _fail(
                    out_name,
                    out,
                    f"{how} {in_name} {source}, which this command reads",
                    f"write {out_name} elsewhere: zooscope never writes to a path it reads from",
                )


def check_run_options(options: Any, local: bool = True) -> None:
    """Check a :class:`~zooscope.pipeline.scoring.RunOptions` before a survey records anything.

    Parameters
    ----------
    options : RunOptions
    local : bool
        The models run in this process (device availability is checked here).
    """
    check_number(options.batch_size, "batch_size", 1)
    check_number(options.num_workers, "num_workers", 0)
    if isinstance(options.memory_budget, str):
        check_byte_size(options.memory_budget, "memory_budget")
    else:
        check_number(options.memory_budget, "memory_budget", 1)
    check_device(options.device, "device", local=local)
