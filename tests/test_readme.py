"""The README is executable: every command of its tour and of docs/*.md runs on the demo's outputs.

The commands are the fenced ``bash`` blocks of README.md after "Two commands" (command 1 is the
demo, which the ``demo_parent`` fixture runs reduced; command 2 runs this file) and of docs/*.md.
Each runs as written, in bash, offline, in the folder that holds ``zooscope-demo/`` (where a reader
stands after command 1), in the documents' order. A command that needs what a fresh clone lacks
says so in its comment, ``# ... (needs: NSD data)``: it is skipped with that reason, but its
subcommand and options must still exist. ``zooscope survey ... --workers 2`` stands for the block's
previous ``zooscope survey`` command with the options after ``...`` added, as a reader takes it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOUR_START = "## Two commands"
# The reduced demo: the models the tour names (two architecture classes, a trained model and its
# random twin), 40 images, a few layers per model, few ceiling simulations; no report (the tour
# writes its own).
DEMO_MODELS = "effnet_lite0,effnet_lite0_random,resnet18_random,vit_tiny_random"
DEMO_LAYERS = r"(conv_pw|conv\d|mlp\.fc2)$"
DEMO_ARGS = [
    "--n-images", "40", "--models", DEMO_MODELS, "--layers", DEMO_LAYERS, "--n-sims", "5",
    "--no-report",
]  # fmt: skip
COMMAND_TIMEOUT_S = 600
FENCE = re.compile(r"^```(\w*)\s*$")
NEEDS = re.compile(r"needs: ([^;)]+)")
ELLIPSIS = re.compile(r"^(?P<env>(?:\w+=\S*\s+)*)zooscope (?P<sub>[\w-]+) \.\.\.(?P<rest>.*)$")


@dataclass(frozen=True)
class DocCommand:
    """One command of the documentation, as a reader would type it."""

    where: str  # "README.md:57", the line it starts on
    text: str  # continuation lines joined, comment kept
    needs: str  # what it needs that a fresh clone lacks ("" when it runs on the demo)

    @property
    def code(self) -> str:
        """The command without its comment."""
        return split_comment(self.text)[0]


def split_comment(line: str) -> tuple[str, str]:
    """``(command, comment)`` of one shell line; the comment starts at the first `` #``."""
    match = re.search(r"(^|\s)#", line)
    if match is None:
        return line.rstrip(), ""
    return line[: match.start()].rstrip(), line[match.end() :].strip()


def bash_blocks(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line number of the first line, lines)`` of each fenced ``bash`` block."""
    inside, start, block = None, 0, []
    for number, line in enumerate(lines, start=1):
        fence = FENCE.match(line)
        if fence is None:
            block.append(line)
        elif inside is None:
            inside, start, block = fence.group(1), number + 1, []
        else:
            if inside == "bash":
                yield start, block
            inside = None


def logical_lines(start: int, block: list[str]) -> Iterator[tuple[int, str]]:
    """The commands of one block with their first line: continuations joined, comments dropped."""
    pending, first = "", start
    for number, line in enumerate(block, start=start):
        if not pending:
            first = number
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        yield first, pending + stripped
        pending = ""


def expand_ellipsis(text: str, earlier: dict[str, DocCommand], where: str) -> tuple[str, str]:
    """``(command, inherited needs)``: ``zooscope X ... opts`` as the block's last ``zooscope X``."""
    match = ELLIPSIS.match(text)
    if match is None:
        return text, ""
    base = earlier.get(match["sub"])
    if base is None:
        raise AssertionError(f"{where}: no earlier `zooscope {match['sub']}` in its block for ...")
    return f"{match['env']}{base.code}{match['rest']}", base.needs


def doc_commands(path: Path, after: str | None = None, root: Path = ROOT) -> list[DocCommand]:
    """The commands of the ``bash`` blocks of one Markdown file (below the section ``after``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if after is not None:
        # Blanked, not cut, so that line numbers stay the file's; the section ``after`` holds
        # the install + test pair, which this module stands in for.
        heading = lines.index(after)
        end = next(i for i in range(heading + 1, len(lines)) if lines[i].startswith("## "))
        lines = [""] * end + lines[end:]
    commands = []
    for start, block in bash_blocks(lines):
        earlier: dict[str, DocCommand] = {}
        for number, raw in logical_lines(start, block):
            where = f"{path.relative_to(root)}:{number}"
            text, inherited = expand_ellipsis(raw, earlier, where)
            marked = ", ".join(NEEDS.findall(split_comment(raw)[1]))
            needs = [n.strip() for n in f"{inherited}, {marked}".split(",")]
            command = DocCommand(where, text, ", ".join(dict.fromkeys(n for n in needs if n)))
            commands.append(command)
            sub = re.match(r"(?:\w+=\S*\s+)*zooscope ([\w-]+)", text)
            if sub is not None and "..." not in raw:
                earlier[sub[1]] = command
    return commands


def all_commands() -> list[DocCommand]:
    """The README's tour, then each docs/*.md file's commands."""
    commands = doc_commands(README, after=TOUR_START)
    for doc in sorted((ROOT / "docs").glob("*.md")):
        commands += doc_commands(doc)
    return commands


COMMANDS = all_commands()


def test_the_documents_have_a_tour_to_run():
    runnable = [c for c in COMMANDS if not c.needs]
    assert len(COMMANDS) >= 30 and len(runnable) >= 20, [c.where for c in COMMANDS]
    assert any(c.where.startswith("docs/") for c in COMMANDS)


def test_parsing_joins_continuations_expands_ellipses_and_reads_needs(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text(
        "```bash\n# a comment line\nzooscope survey --db a.duckdb \\\n    --device cuda  "
        "# big (needs: GPU)\nzooscope survey ... --workers 2   # local\n```\n"
        "```text\nzooscope not-a-command\n```\n",
        encoding="utf-8",
    )
    first, second = doc_commands(doc, root=tmp_path)
    assert (first.where, first.code, first.needs) == (
        "x.md:3", "zooscope survey --db a.duckdb --device cuda", "GPU"
    )  # fmt: skip
    assert (second.code, second.needs) == (
        "zooscope survey --db a.duckdb --device cuda --workers 2", "GPU"
    )  # fmt: skip


@pytest.fixture(scope="session")
def demo_parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``zooscope-demo/``, the outputs of a reduced ``zooscope demo``."""
    parent = tmp_path_factory.mktemp("readme")
    result = run_shell(shlex.join(["zooscope", "demo", *DEMO_ARGS]), parent)
    assert result.returncode == 0, result.stderr[-4000:]
    return parent


def run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one command line in bash with this interpreter's ``zooscope`` first on PATH, offline,
    with zooscope's cache (cost calibrations, published files) in ``cwd`` as on a fresh clone."""
    env = dict(os.environ, ZOOSCOPE_OFFLINE="1", ZOOSCOPE_CACHE=str(cwd / ".zooscope-cache"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tour(demo_parent: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every runnable command's result, run once in the documents' order (later ones use earlier
    ones' outputs, as a reader's do), keyed by where it is written."""
    return {c.where: run_shell(c.text, demo_parent) for c in COMMANDS if not c.needs}


def cli_options(words: list[str]) -> tuple[str, set[str]]:
    """``(command path, options it takes)`` of ``zooscope`` followed by ``words``."""
    import typer

    from zooscope.cli import app

    command = typer.main.get_command(app)
    options: set[str] = set()
    path = ["zooscope"]
    for word in words:
        options |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        if word not in getattr(command, "commands", {}):  # a group's subcommands
            break
        command, path = command.commands[word], [*path, word]
    options |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    return " ".join(path), options


def assert_options_exist(command: DocCommand) -> None:
    """The subcommand and every option of a command that cannot run here exist."""
    words = shlex.split(command.code.replace("[", " ").replace("]", " "))
    words = words[words.index("zooscope") + 1 :]
    path, options = cli_options([w for w in words if not w.startswith("-")])
    assert len(path.split()) > 1, f"{command.where}: no zooscope subcommand in {command.text!r}"
    unknown = [
        w.split("=")[0] for w in words if w.startswith("-") and w.split("=")[0] not in options
    ]
    assert not unknown, f"{command.where}: `{path}` has no option {unknown}: {command.text!r}"


def test_a_skipped_command_with_a_stale_option_or_subcommand_fails():
    assert_options_exist(DocCommand("x.md:1", "zooscope survey -m demo --estimate", "GPU"))
    for stale in ("zooscope survey -m demo --no-such-option 3", "zooscope surveys -m demo"):
        with pytest.raises(AssertionError, match=r"x\.md:1"):
            assert_options_exist(DocCommand("x.md:1", stale, "GPU"))


@pytest.mark.slow  # a reduced demo (about a minute) and some 30 commands
@pytest.mark.parametrize("command", COMMANDS, ids=[c.where for c in COMMANDS])
def test_documented_command_runs_on_the_demo(command: DocCommand, request: pytest.FixtureRequest):
    if command.needs:
        assert_options_exist(command)
        pytest.skip(f"needs {command.needs}: {command.code}")
    result = request.getfixturevalue("tour")[command.where]
    assert result.returncode == 0, (
        f"{command.where}: exit {result.returncode}\n$ {command.text}\n"
        f"--- stderr (end) ---\n{result.stderr[-3000:]}\n--- stdout (end) ---\n{result.stdout[-1000:]}"
    )
    # the documents speak the current vocabulary (docs/cli.md), not an old spelling
    assert "the old spelling will go" not in result.stderr, f"{command.where}: {result.stderr}"
