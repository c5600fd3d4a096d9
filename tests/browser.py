"""Headless Chromium for the report tests: where it is, the skip when it is not, and its two uses.

Looked for in this order: ``$ZOOSCOPE_CHROMIUM``, ``chromium`` / ``chromium-browser`` /
``google-chrome`` on ``PATH``, then the usual install paths (a test run may have a short ``PATH``,
e.g. under an IDE or a CI step that resets it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_PATHS = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)


def find_chromium() -> str | None:
    """The Chromium (or Chrome) executable, or None where there is none."""
    named = os.environ.get("ZOOSCOPE_CHROMIUM")
    if named:
        return named if Path(named).is_file() else shutil.which(named)
    for name in _NAMES:
        if found := shutil.which(name):
            return found
    return next((p for p in _PATHS if os.access(p, os.X_OK)), None)


#: The executable (None: tests that need it skip).
CHROMIUM = find_chromium()
#: Skip unless headless Chromium is installed.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found (Debian package 'chromium'; or set ZOOSCOPE_CHROMIUM)",
)

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def screenshot(page: Path, shot: Path, width: int = 1400, height: int = 1600) -> Path:
    """A PNG of ``page`` rendered ``width`` x ``height`` px."""
    cmd = [
        CHROMIUM,
        *_FLAGS,
        f"--screenshot={shot}",
        f"--window-size={width},{height}",
        page.as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return shot


def dump_dom(page: Path, width: int = 1400) -> str:
    """The DOM of ``page`` after its scripts ran, laid out ``width`` px wide."""
    cmd = [CHROMIUM, *_FLAGS, "--dump-dom", f"--window-size={width},2000", page.as_uri()]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
