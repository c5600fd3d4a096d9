"""``--help`` as a reader wants it, fixed once for every command.

Typer shows a value type after every option, flags included (``--load <bool>``, even
``--help <bool>``); it writes a required argument as ``{uid}`` in the usage line; it prints
our docstrings as written: RST roles and double backticks, and the line breaks of the source
file in the middle of sentences; and its option panels leave the help text a third of an
80-column terminal, cutting long words with an ellipsis. :func:`tidy_help` undoes all of that on
the command tree (click's plain layout, which wraps the help text to the width), and is called
once by the root group.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer.core

__all__ = ["plain_text", "tidy_help"]

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|ref):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")
_LIST_ITEM = re.compile(r"\s*(?:[-*]|\d+[.)])\s")


def plain_text(text: str) -> str:
    """``text`` without RST markup: roles become `name`, double backticks single ones."""
    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return _LITERAL.sub(r"`\1`", text)


def _paragraph(paragraph: str) -> str:
    """One paragraph on one line (the terminal wraps it), unless it is a list."""
    lines = paragraph.splitlines()
    if paragraph.startswith("\b") or any(_LIST_ITEM.match(line) for line in lines):
        return paragraph
    return " ".join(line.strip() for line in lines)


def _help_text(text: str | None) -> str | None:
    if not text:
        return text
    text = plain_text(inspect.cleandoc(text))
    return "\n\n".join(_paragraph(p) for p in text.split("\n\n"))


def _tidy_command(command: Any) -> None:
    # click's plain layout: the help text gets the terminal's width (typer's panels give it a
    # third of 80 columns and cut long words and option names with an ellipsis)
    command.rich_markup_mode = None
    command.help = _help_text(command.help)
    if command.help and not command.short_help:  # the first sentence, whole, in the commands list
        command.short_help = command.help.split("\n\n")[0]
    for param in command.params:
        param.help = plain_text(param.help) if getattr(param, "help", None) else None
    for sub in getattr(command, "commands", {}).values():
        _tidy_command(sub)


def _option_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """The value type shown after an option; none after a flag or a counter, which take no value."""
    if self.is_flag or self.count:
        return None
    return _typer_option_type(self, ctx)


def _argument_usage(self: typer.core.TyperArgument) -> str:
    """An argument in the usage line as ``UID`` (required) or ``[UID]``, as click writes it."""
    name = (self.metavar or self.name or "").upper()
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


_typer_option_type = typer.core.TyperOption.display_type_rich


def tidy_help(root: Any) -> None:
    """Tidy the help of ``root`` and every command below it (see the module docstring)."""
    typer.core.TyperOption.display_type_rich = _option_type
    typer.core.TyperArgument._usage_display_name = _argument_usage
    _tidy_command(root)
