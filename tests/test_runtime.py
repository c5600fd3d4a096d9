"""Process settings (zooscope.runtime): the CLI's OpenMP wait policy; glibc's allocator and huge pages
(library functions, documented in docs/performance.md; the CLI flags are deprecated)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zooscope.runtime import quiet_openmp_waits, transparent_huge_pages_mode

# A child process: settings must apply before anything else allocates, and must not leak into
# the test session. It holds a 100 MB array and reports where glibc put it (mallinfo2): in
# mmapped blocks (``hblkhd``) or in the heap (``arena``), then whether the heap kept it after free.
CHILD = """
import ctypes, sys
from zooscope.runtime import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "tune" else False
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    print("nomallinfo2 0 0 0")
    raise SystemExit
libc.mallinfo2.restype = MallInfo2
b = np.ones(25_000_000, np.float32)
held = libc.mallinfo2()
del b
freed = libc.mallinfo2()
print(applied, held.hblkhd, held.arena, freed.arena)
"""


def _environment(**env: str) -> dict[str, str]:
    """This process's environment without allocator settings (glibc's, torch's huge pages), plus ``env``."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MALLOC_") and k != "THP_MEM_ALLOC_ENABLE"
    }
    return inherited | env


def _child(mode: str, **env: str) -> tuple[str, int, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env=_environment(**env),
    ).stdout.split()
    if out[0] == "nomallinfo2":
        pytest.skip("glibc older than 2.33 (no mallinfo2)")
    return out[0], int(out[1]), int(out[2]), int(out[3])


def test_cli_lets_idle_openmp_threads_sleep_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    quiet_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    quiet_openmp_waits()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_arrays_come_from_the_heap_and_stay_for_reuse():
    size = 100_000_000
    _, mapped, heap, _ = _child("default")
    assert mapped >= size and heap < size  # glibc's default: a fresh mapping, unmapped on free
    applied, mapped, heap, heap_after_free = _child("tune")
    if applied != "True":
        pytest.skip("this libc refused mallopt")
    assert mapped < size and heap >= size and heap_after_free >= size


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_user_allocator_settings_win():
    applied, mapped, _, _ = _child("tune", MALLOC_MMAP_THRESHOLD_="131072")
    assert applied == "False" and mapped >= 100_000_000


def test_the_cli_imports_no_torch_before_configuring_the_process():
    # OMP_WAIT_POLICY only counts if it is set before torch (and its OpenMP runtime) loads.
    code = "import sys, zooscope.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("flag", ["--keep-freed-memory", "--huge-pages"])
def test_the_removed_allocator_flags_are_refused(flag):
    from typer.testing import CliRunner

    from zooscope.cli import app

    result = CliRunner().invoke(app, [flag, "models", "--help"])
    assert result.exit_code == 2 and "No such option" in result.output
    assert flag not in CliRunner().invoke(app, ["--help"]).output


# A child that allocates a 64 MB torch tensor and reports how much of its mapping the kernel backs
# with huge pages (``AnonHugePages`` in /proc/self/smaps): the ground truth of what torch did.
HUGE_CHILD = """
import sys
from zooscope.runtime import use_huge_pages
if sys.argv[1] == "huge":
    use_huge_pages()
import torch
tensor = torch.empty(16 * 2**20)
tensor.fill_(1.0)
address = tensor.data_ptr()
inside = False
with open("/proc/self/smaps") as smaps:
    for line in smaps:
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            inside = start <= address < end
        elif inside and fields[0] == "AnonHugePages:":
            print(int(fields[1]) * 1024)
            break
"""


def _huge_child(mode: str, **env: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", HUGE_CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env=_environment(**env),
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(
    transparent_huge_pages_mode() not in ("madvise", "always"),
    reason="no transparent huge pages here",
)
def test_huge_pages_back_large_tensors_only_on_request():
    size = 64 * 2**20
    assert _huge_child("huge") >= size // 2
    if (
        transparent_huge_pages_mode() == "madvise"
    ):  # with "always" every large mapping may get them anyway
        assert _huge_child("default") == 0
        assert _huge_child("huge", THP_MEM_ALLOC_ENABLE="0") == 0  # the user's own value wins


# What the zooscope command sets before any command imports torch (its app replaced by a no-op).
COMMAND_CHILD = """
import os
import zooscope.cli as cli
cli.app = lambda: None
cli.main()
print(
    os.environ.get("OMP_WAIT_POLICY"),
    os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
    os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
)
"""


def _command_child(**env: str) -> list[str]:
    settings = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")
    inherited = {k: v for k, v in _environment().items() if k not in settings} | env
    out = subprocess.run(
        [sys.executable, "-c", COMMAND_CHILD],
        capture_output=True,
        text=True,
        check=True,
        env=inherited,
    )
    return out.stdout.split()


def test_the_command_quiets_idle_threads_and_sets_huge_pages_unless_the_user_chose_otherwise():
    offered = transparent_huge_pages_mode() in ("madvise", "always")
    assert _command_child() == ["PASSIVE", "1" if offered else "unset", "4"]
    assert _command_child(THP_MEM_ALLOC_ENABLE="0")[1] == "0"
    assert _command_child(OMP_WAIT_POLICY="ACTIVE")[0] == "ACTIVE"
    assert _command_child(OPENBLAS_THREAD_TIMEOUT="28")[2] == "28"
