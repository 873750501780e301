"""Reports of reproductions: aggregate runs over seeds from MLflow (mean and 95%
t-interval), markdown tables next to published values, PASS/FAIL verdicts, figures."""

from regbench.report.markdown import Verdict, table, verdict_block
from regbench.report.runs import REPRO_TAG, RunRecord, find_parent, history, load_runs
from regbench.report.stats import Summary, mean_ci
from regbench.report.writer import report_dir, write_report

__all__ = [
    "REPRO_TAG",
    "RunRecord",
    "Summary",
    "Verdict",
    "find_parent",
    "history",
    "load_runs",
    "mean_ci",
    "report_dir",
    "table",
    "verdict_block",
    "write_report",
]
