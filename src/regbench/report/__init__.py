"""Reports of reproductions: aggregate runs over seeds from MLflow (mean and 95%
t-interval), runs grouped by a grid's axes (axes.py), claims judged on intervals (claims.py),
markdown tables, figures."""

from regbench.report.markdown import table
from regbench.report.runs import REPRO_TAG, RunRecord, find_parent, history, load_runs
from regbench.report.stats import Summary, mean_ci
from regbench.report.writer import report_dir, write_report

__all__ = [
    "REPRO_TAG",
    "RunRecord",
    "Summary",
    "find_parent",
    "history",
    "load_runs",
    "mean_ci",
    "report_dir",
    "table",
    "write_report",
]
