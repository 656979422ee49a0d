"""Results -> the papers' tables and figures.

``tables`` reads results Parquets and summarises trials (mean ± std per setting, per cycle),
``paper`` holds the papers' numbers from the configs, ``paired`` the paired comparisons between
settings, ``render`` writes markdown / LaTeX / CSV (through pandas), ``figures`` the PNGs,
``document`` report.md + report.html; ``python -m orchestrator.report`` is the command (``__main__``).
"""

from orchestrator.report.render import render_table, report_text
from orchestrator.report.tables import REQUIRED_COLUMNS, ReportError

__all__ = ["REQUIRED_COLUMNS", "ReportError", "main", "render_table", "report_text"]


def main(argv=None) -> int:
    """``python -m orchestrator.report`` as a function."""
    from orchestrator.report.__main__ import main as cli_main

    return cli_main(argv)
