"""zooscope.results: the DuckDB results database, importers of published scores, export."""

from zooscope.results.db import ResultsDB
from zooscope.results.importers import import_conwell2024, import_scores_table

__all__ = ["ResultsDB", "import_conwell2024", "import_scores_table"]
