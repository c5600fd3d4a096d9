"""``zooscope import-scores conwell2024`` without a folder: the published files, fetched and checked.

GitHub cannot be reached from the test machines, so the downloads are served from a local mirror
(``ZOOSCOPE_CONWELL2024_URL``, the same ``COMMIT/PATH`` layout as the repository's raw files) that
holds copies of the shared reference files; offline (``ZOOSCOPE_OFFLINE=1``) the command names
every URL and the folder to put the files in, and files placed there by hand are used once their
checksums match.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from reference_data import SHARED
from typer.testing import CliRunner

from zooscope.cli import app
from zooscope.results.db import ResultsDB
from zooscope.results.published import (
    CONWELL2024_FILES,
    CONWELL2024_RAW,
    PublishedDataUnavailable,
    conwell2024_folder,
)

needs_shared = pytest.mark.skipif(
    not SHARED.exists(),
    reason="needs the shared copy of Conwell et al. 2024's published files "
    "(../shared/reference/conwell2024) to stand in for the repository",
)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty zooscope cache; its Conwell folder."""
    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOOSCOPE_CONWELL2024_URL", raising=False)
    return tmp_path / "cache" / "published" / "conwell2024"


def _import(db: Path, **env: str):
    return CliRunner().invoke(app, ["import-scores", "conwell2024", "--db", str(db)], env=env)


def test_offline_names_every_url_and_the_folder(cache, tmp_path):
    db = tmp_path / "published.duckdb"
    result = _import(db, ZOOSCOPE_OFFLINE="1")
    assert result.exit_code == 2, result.output
    assert f"not in {cache}" in result.output
    for item in CONWELL2024_FILES:
        url = f"{CONWELL2024_RAW}/{item.commit}/{item.path}"
        assert f"{url}  ->  {cache / item.name}" in result.output
    assert cache.is_dir() and not any(cache.iterdir())  # ready for the files, nothing fetched
    assert not db.exists()  # nothing written before the data is there


@needs_shared
def test_the_recorded_checksums_are_those_of_the_published_files():
    for item in CONWELL2024_FILES:
        data = (SHARED / item.name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (item.size, item.sha256), item.name


def _place(folder: Path) -> None:
    for item in CONWELL2024_FILES:
        (folder / item.name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / item.name, folder / item.name)


@needs_shared
def test_files_placed_in_the_cache_are_checked_and_imported_offline(cache, tmp_path):
    _place(cache)
    db = tmp_path / "published.duckdb"
    result = _import(db, ZOOSCOPE_OFFLINE="1")
    assert result.exit_code == 0, result.output
    assert "imported 224 models" in result.output
    with ResultsDB(db, read_only=True) as database:
        summary = database.summary(metric="crsa")
    assert len(summary) == 224
    assert set(summary["profile"]) == {"published"}  # not a zooscope profile


@needs_shared
def test_a_changed_file_in_the_cache_is_refused(cache, tmp_path):
    _place(cache)
    path = cache / "noise_ceilings.csv"
    path.write_text(path.read_text().replace("0.79", "0.80"))
    result = _import(tmp_path / "published.duckdb", ZOOSCOPE_OFFLINE="1")
    assert result.exit_code == 2
    assert f"{path}: SHA-256 does not match the published file" in result.output


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server laid out like the repository's raw files (COMMIT/PATH)."""
    root = tmp_path / "mirror"
    for item in CONWELL2024_FILES:
        target = root / item.commit / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SHARED / item.name, target)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ZOOSCOPE_CONWELL2024_URL", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("ZOOSCOPE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield root
    server.shutdown()
    server.server_close()


@needs_shared
def test_fetched_files_are_verified_and_cached(cache, mirror):
    folder = conwell2024_folder()
    assert folder == cache
    for item in CONWELL2024_FILES:
        assert (folder / item.name).read_bytes() == (SHARED / item.name).read_bytes()
    (mirror / CONWELL2024_FILES[0].commit).rename(mirror / "gone")  # the cache is used now
    assert conwell2024_folder() == cache
    assert not list(cache.rglob("*.tmp"))


@needs_shared
def test_a_download_with_another_checksum_is_not_kept(cache, mirror):
    item = next(f for f in CONWELL2024_FILES if f.name == "noise_ceilings.csv")
    served = mirror / item.commit / item.path
    served.write_text(served.read_text().replace("0.79", "0.80"))
    with pytest.raises(PublishedDataUnavailable, match="downloaded file has SHA-256"):
        conwell2024_folder()
    assert not (cache / item.name).exists()
    assert not list(cache.rglob("*.tmp"))
