"""Where the tests find Conwell et al. (2024)'s published source data, and the skip that says so.

CI reads the copy in ``../shared/reference/conwell2024`` (beside the checkout). On a clone without
it, the files that ``zooscope import-scores conwell2024`` fetched into the cache
(``~/.cache/zooscope/published/conwell2024``, or ``ZOOSCOPE_CACHE``) are used once complete; the
tests that need them are skipped otherwise, and their reason says how to get the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zooscope.results.published import CONWELL2024_FILES, cache_root

SHARED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "conwell2024"


def _conwell2024() -> Path:
    """The shared copy when present, else the cache folder when every file is there."""
    cached = cache_root() / "published" / "conwell2024"
    complete = all(
        (cached / f.name).is_file() and (cached / f.name).stat().st_size == f.size
        for f in CONWELL2024_FILES
    )
    return cached if complete and not SHARED.exists() else SHARED


#: The folder of the published files (may not exist: see :data:`needs_conwell2024`).
CONWELL = _conwell2024()
#: Skip unless the published files are there.
needs_conwell2024 = pytest.mark.skipif(
    not (CONWELL / "results_summary.csv").is_file(),
    reason=(
        "needs Conwell et al. 2024's published source data: ../shared/reference/conwell2024 "
        "beside the checkout, or run `zooscope import-scores conwell2024 --db x.duckdb` once "
        "(online) to fetch it into the cache"
    ),
)
