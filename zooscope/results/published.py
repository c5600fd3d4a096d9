"""Published source data, found as a user would: fetched from the paper's repository and cached.

Conwell et al. (2024) released their source data in their public repository
(``github.com/ColinConwell/DeepNSD``). That repository carries no licence, so zooscope does not
ship the files: :func:`conwell2024_folder` downloads the ones zooscope reads at pinned commits,
checks each against the SHA-256 recorded here, and keeps them in
``~/.cache/zooscope/published/conwell2024`` (``ZOOSCOPE_CACHE`` moves the cache). The folder then
has the layout :func:`zooscope.results.importers.import_conwell2024` reads.

Offline (no route to GitHub, or ``ZOOSCOPE_OFFLINE=1``) nothing is downloaded: the error names
each missing file's URL and the folder to put it in, and a file placed there by hand is used
once its checksum matches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from zooscope._files import temporary_path
from zooscope.errors import ZooscopeError
from zooscope.zoo.hub import host_reachable, offline_forced

logger = logging.getLogger(__name__)

__all__ = [
    "CONWELL2024_FILES",
    "CONWELL2024_REPOSITORY",
    "PublishedDataUnavailable",
    "PublishedFile",
    "cache_root",
    "conwell2024_folder",
]

#: The paper's public repository.
CONWELL2024_REPOSITORY = "https://github.com/ColinConwell/DeepNSD"
#: Where its files are downloaded from (``ZOOSCOPE_CONWELL2024_URL`` names a mirror with the same
#: ``COMMIT/PATH`` layout, e.g. a lab's copy on an air-gapped network).
CONWELL2024_RAW = "https://raw.githubusercontent.com/ColinConwell/DeepNSD"

# The commits at which each file has the content whose checksum is recorded below.
_PUBLICATION = "5efc1921078032b255532c3d30b527633ecd8b9f"
_FIGURES = "8b96e44b001fcbb5000236375a8d4887d78e4683"
_STATISTICS = "20a43be2b06fd4ad40de01dc80899039ff71e4e7"


@dataclass(frozen=True)
class PublishedFile:
    """One published file: where it goes in the folder, where it lives in the repository.

    Attributes
    ----------
    name : str
        Path inside the source-data folder (e.g. ``figure_data/Figure2.csv``).
    path : str
        Path inside the repository.
    commit : str
        The pinned commit it is fetched at.
    sha256 : str
        Its checksum (hex).
    size : int
        Its size in bytes.
    """

    name: str
    path: str
    commit: str
    sha256: str
    size: int

    def url(self, base: str | None = None) -> str:
        """The download URL (raw file at the pinned commit, or at the mirror ``base``)."""
        base = base or os.environ.get("ZOOSCOPE_CONWELL2024_URL") or CONWELL2024_RAW
        return f"{base.rstrip('/')}/{self.commit}/{self.path}"


#: The files zooscope reads (importer, published model similarity, the tests' references).
CONWELL2024_FILES: tuple[PublishedFile, ...] = (
    PublishedFile("results_summary.csv", "publication/source_data/results_summary.csv",
                  _PUBLICATION, "968d57ae82e756130f567631b19bced90bbadf670fd9ce2ea6f82563ac201c64", 183750),
    PublishedFile("model_contrasts.csv", "source_code/pressures/model_contrasts.csv",
                  _FIGURES, "aa27fe9ab9a74422d2dcdc279e70b384109f523f05b563335260736444f13d4b", 60493),
    PublishedFile("noise_ceilings.csv", "source_code/pressures/brain_data/ceilings/shared1000_OTC-only.csv",
                  _FIGURES, "57a28865e1ad3564e83a534398537aeadbe516aa24f14964e35df8974725b42c", 358),
    PublishedFile("figure_data/Figure2.csv", "publication/figure_data/Figure2.csv",
                  _PUBLICATION, "661f029a353237f92c39d4314d088bfa1d67bcb3fb3e93f09d67d3e5f6af70ec", 31635),
    PublishedFile("figure_data/Figure3.csv", "publication/figure_data/Figure3.csv",
                  _PUBLICATION, "40966b33b09ce5e2680800a68ee9045a39ca14c9b24a613225fde32483055366", 31807),
    PublishedFile("figure_data/Figure4A.csv", "publication/figure_data/Figure4A.csv",
                  _FIGURES, "7ba41759429de71c73f547948ee287522ffbeb5e4134630dfd2c0d59696c9105", 18182),
    PublishedFile("figure_data/Figure4B.csv", "publication/figure_data/Figure4B.csv",
                  _PUBLICATION, "c00fa0722115c83dae615218e015511baed1a8226d6f734359c3ebb7bb43f13f", 2974),
    PublishedFile("figure_data/Figure5C.csv", "publication/figure_data/Figure5C.csv",
                  _FIGURES, "2f7073f8a4ecbf5f728d74e31c268813c5c4f3d6f5250fa19e893ecf6a7440d6", 12291),
    PublishedFile("model_statistics/imagenet1k.csv", "publication/source_data/model_statistics/imagenet1k.csv",
                  _STATISTICS, "ef195ea7b2a80a98274cce36b42d26a98bfbd1fbc596956f23f21e5a17423fcd", 3878),
    PublishedFile("model_statistics/dimensionality.csv", "publication/source_data/model_statistics/dimensionality.csv",
                  _PUBLICATION, "54e756b55c1532aa5a13fce8f6cb28c99f4ec22c5135ce29d1f6723b2b91f5c4", 28323),
    PublishedFile("model_statistics/parameter_count.csv", "publication/source_data/model_statistics/parameter_count.csv",
                  _PUBLICATION, "7b06ecd6cc895c1957677f0a476b0e1a38fc83709650d58fd5bd7f9ca8975541", 8070),
    PublishedFile("model_uber_rsa.csv", "publication/source_data/model_uber_rsa.csv",
                  _PUBLICATION, "2130e7d42d767f967af1bdaa88cac6e32cf836f8e5c42da44dc07dfe91f77587", 3967746),
    PublishedFile("voxel_metadata_OTC.csv", "publication/source_data/voxel_metadata_OTC.csv",
                  _PUBLICATION, "153feed4d204e6b6d08d72db7afe96a269224e02b062303714b49597b5bfcca6", 2100283),
)  # fmt: skip


class PublishedDataUnavailable(ZooscopeError):
    """Published files that could not be fetched (offline) or whose checksum does not match."""


def cache_root() -> Path:
    """zooscope's cache folder: ``ZOOSCOPE_CACHE``, else ``~/.cache/zooscope``."""
    return Path(os.environ.get("ZOOSCOPE_CACHE") or Path.home() / ".cache" / "zooscope")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(item: PublishedFile, target: Path, timeout: float) -> None:
    """Fetch ``item`` to ``target`` through a temporary; refuse it unless the checksum matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = temporary_path(target.parent, target.name)
    try:
        with urllib.request.urlopen(item.url(), timeout=timeout) as response:
            partial.write_bytes(response.read())
        got = _sha256(partial)
        if got != item.sha256:
            raise PublishedDataUnavailable(
                f"{item.url()}: downloaded file has SHA-256 {got}, expected {item.sha256}\n"
                "  the repository's file changed or the download was damaged; nothing was kept"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _reachable() -> bool:
    """Whether a download may be tried: not forced offline, and the host answers."""
    if offline_forced():
        return False
    url = urlparse(CONWELL2024_FILES[0].url())
    if url.scheme == "file":
        return True
    return host_reachable(url.hostname or "", url.port or (443 if url.scheme == "https" else 80))


def conwell2024_folder(folder: str | Path | None = None, *, timeout: float = 60.0) -> Path:
    """The folder of Conwell et al. (2024)'s source data, every file checked, fetched if missing.

    Parameters
    ----------
    folder : path-like, optional
        Where the files are kept (default: ``cache_root() / "published" / "conwell2024"``).
    timeout : float
        Seconds per download.

    Returns
    -------
    Path
        The folder, holding every file of :data:`CONWELL2024_FILES` with its recorded checksum.

    Raises
    ------
    PublishedDataUnavailable
        A file there has another checksum, or files are missing and cannot be downloaded; the
        message lists the URLs and the folder to put them in.
    """
    folder = Path(folder) if folder is not None else cache_root() / "published" / "conwell2024"
    missing = []
    for item in CONWELL2024_FILES:
        path = folder / item.name
        if not path.is_file():
            missing.append(item)
        elif path.stat().st_size != item.size or _sha256(path) != item.sha256:
            raise PublishedDataUnavailable(
                f"{path}: SHA-256 does not match the published file {item.url()}\n"
                "  delete it (zooscope fetches it again) or put the published file there"
            )
    if missing and not _reachable():
        folder.mkdir(parents=True, exist_ok=True)  # ready for the files
        urls = "\n".join(f"  {item.url()}  ->  {folder / item.name}" for item in missing)
        raise PublishedDataUnavailable(
            f"offline: {len(missing)} published file(s) of Conwell et al. 2024 are not in {folder}\n"
            f"  download them on a connected machine and put each where the arrow points:\n{urls}"
        )
    for item in missing:
        logger.info("fetching %s", item.url())
        try:
            _download(item, folder / item.name, timeout)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise PublishedDataUnavailable(
                f"{item.url()}: download failed ({error})\n"
                f"  download it yourself to {folder / item.name}, then run the command again"
            ) from None
    return folder
