"""zooscope.report: figures (matplotlib) and the self-contained HTML report."""

from zooscope.report.html import build_report

__all__ = ["build_report"]
