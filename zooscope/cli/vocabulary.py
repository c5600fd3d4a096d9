"""One word, one meaning across the commands: renamed options and their old spellings.

Every command's options follow one vocabulary (``docs/cli.md``): ``--model``/``--models`` name
model uids, ``--rois`` chooses regions, ``--workers`` are Dask workers, ``--format`` is how a
table prints, ``--device`` defaults to ``auto``. Options that meant something else in one command
were renamed; their old spellings (:data:`RENAMED`) still work for now. :class:`VocabularyGroup`,
the class of every command group, rewrites an old spelling to the new one before the command
parses its options, and :func:`warn_renamed` (called by ``check_options``) says so on stderr, one
line each, through the ``zooscope`` logger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from typer.core import TyperGroup

__all__ = ["RENAMED", "VocabularyGroup", "comma_list", "rewrite_renamed", "warn_renamed"]

logger = logging.getLogger(__name__)

#: Old spellings that still work, by command: ``{command path: {old flag: new flag}}``.
RENAMED: dict[str, dict[str, str]] = {
    "analyze contrast": {"--model": "--stats-model", "--pair": "--pair-by"},
    "analyze paired": {"--roi": "--rois"},
    "analyze groups": {"--roi": "--rois"},
    "analyze scaling": {"--roi": "--rois"},
    "analyze layer-cka": {"--model": "--models"},
    "ceiling": {"--roi": "--rois"},
    "report": {"--roi": "--rois"},
    "extract": {"--workers": "--loader-workers"},
    "results export": {"--format": "--file-format"},
    "models check": {"--uids": "--models"},
    "nsd prepare": {"--images": "--image-set"},
    "import-scores csv": {"--benchmark": "--benchmark-key"},
}

#: Where :class:`VocabularyGroup` leaves the notes for :func:`warn_renamed` (``ctx.meta`` is
#: shared by a command's context and its parents').
_NOTES = "zooscope.renamed"


def comma_list(values: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """The names of a comma-separated option (or of a repeated one, each value comma-separated).

    Parameters
    ----------
    values : str, iterable of str, or None
        ``"a,b"``, or ``["a,b", "c"]`` from an option given several times.

    Returns
    -------
    tuple of str or None
        The stripped, non-empty names in order; None when there are none (option left out).
    """
    if values is None:
        return None
    texts = [values] if isinstance(values, str) else list(values)
    names = tuple(name.strip() for text in texts for name in text.split(",") if name.strip())
    return names or None


def _value_counts(command: Any) -> dict[str, int]:
    """How many values follow each flag of ``command`` (0 for on/off flags and counters)."""
    counts: dict[str, int] = {}
    for param in command.params:
        if param.param_type_name == "option":
            n = 0 if (param.is_flag or param.count) else param.nargs
            counts.update({flag: n for flag in (*param.opts, *param.secondary_opts)})
    return counts


def rewrite_renamed(
    args: Sequence[str], renamed: Mapping[str, str], command: Any
) -> tuple[list[str], list[tuple[str, str]]]:
    """``args`` with each old spelling of an option replaced by its new one.

    Only tokens in an option's place are rewritten (not an option's value, nor anything after
    ``--``); ``--old=value`` becomes ``--new=value``.

    Parameters
    ----------
    args : sequence of str
        The command's arguments, as typed.
    renamed : mapping of str to str
        Old flag -> new flag, for this command.
    command : click.Command (typer's)
        The command that parses the result (it knows which flags take a value).

    Returns
    -------
    args : list of str
    renames : list of (str, str)
        Each (old, new) that was used, once each, in the order typed.
    """
    counts = _value_counts(command)
    out: list[str] = []
    used: list[tuple[str, str]] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            out += [token, *tokens]
            break
        flag, equals, value = token.partition("=")
        if flag in renamed:
            token = f"{renamed[flag]}{equals}{value}"
            if (flag, renamed[flag]) not in used:
                used.append((flag, renamed[flag]))
            flag = renamed[flag]
        out.append(token)
        if not equals:  # the option's values follow as separate tokens (click's parser says
            # what a missing one means)
            out += [given for _, given in zip(range(counts.get(flag, 0)), tokens, strict=False)]
    return out, used


def warn_renamed(ctx: Any) -> None:
    """Say on stderr, one line each, which old spellings the running command was given."""
    path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
    for old, new in ctx.meta.pop(_NOTES, []):
        logger.warning("%s is now %s (zooscope %s); the old spelling will go", old, new, path)


class VocabularyGroup(TyperGroup):
    """A command group whose commands still accept the old spellings of renamed options."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is None or hasattr(command, "commands"):  # a group: its own class rewrites
            return name, command, rest
        path = " ".join([*ctx.command_path.split(" ")[1:], name or ""])
        rest, used = rewrite_renamed(rest, RENAMED.get(path, {}), command)
        if used:
            ctx.meta[_NOTES] = used
        return name, command, rest
