"""``regbench site [--out DIR]``: the results site, built from the MLflow store.

It only reads the store (searches and artifact downloads); pages are written to a
temporary folder first and then replace ``--out`` (default ``reports/site/``), so a
failed build leaves the previous site in place. ``--out`` must be new, empty, or a site
this command wrote before (it holds :data:`MARKER`): the command never deletes a folder
it did not write.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from regbench.errors import ConfigError

MARKER = ".regbench-site"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="regbench site",
        description=(
            "Build a static HTML site of every reproduction's verdicts, numbers and figures,\n"
            "and of every `regbench compare` report, from the MLflow store\n"
            "(MLFLOW_TRACKING_URI, else mlruns/). It only reads the store; the pages open\n"
            "without a server (open index.html), or serve them with `make site`."
        ),
        epilog=(
            "examples:\n"
            "  regbench site                        # writes reports/site/index.html\n"
            "  regbench site --out /tmp/site        # elsewhere (new, empty or an earlier site)\n"
            "  make site                            # build, then serve on http://127.0.0.1:8000"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        help="folder to write, replaced whole: new, empty or an earlier site "
        "(default: reports/site/)",
    )
    return p


def default_out() -> Path:
    from regbench.report import report_dir

    return report_dir("site")


def check_out(out: Path) -> None:
    """``out`` can take the site: not inside the store, not a file, not someone else's
    non-empty folder, and writable. Raises ConfigError naming the problem."""
    from regbench.tracking import mlruns_dir

    store = mlruns_dir()
    resolved = out.expanduser().resolve()
    if resolved.is_relative_to(store):
        raise ConfigError(
            f"--out={out} is inside the MLflow store {store}; the site never writes there "
            "(choose e.g. reports/site)"
        )
    if resolved.exists() and not resolved.is_dir():
        raise ConfigError(f"--out={out} is a file; a folder is needed")
    if resolved.is_dir() and any(resolved.iterdir()) and not (resolved / MARKER).exists():
        raise ConfigError(
            f"--out={out} is a non-empty folder that regbench site did not write; "
            "choose a new or empty folder (the site replaces its contents)"
        )
    probe_dir = resolved if resolved.is_dir() else resolved.parent
    try:
        resolved.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=resolved):
            pass
    except OSError as e:
        where = resolved if resolved.is_dir() else probe_dir
        raise ConfigError(
            f"--out={out} is not writable ({e.strerror or e} at {where}); choose a folder "
            "you can write"
        ) from None


def check_store() -> str:
    """The tracking URI; a SQLite store that does not exist is an error (opening it
    would create an empty one)."""
    from regbench.tracking import tracking_uri

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///").split("?")[0])
        if not db.is_file():
            raise ConfigError(
                f"no MLflow store at {db}; run a reproduction first (e.g. `regbench "
                "reproduce two_inputs --scale tiny`) or set MLFLOW_TRACKING_URI"
            )
    return uri


def _replace(out: Path, built: Path) -> None:
    """Put the built site at ``out``, removing only what an earlier build wrote."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    for new in built.iterdir():
        shutil.move(str(new), out / new.name)


def build(out: Path) -> dict[str, int]:
    """Read the store, write the site to ``out``; returns what it counted."""
    from regbench.site.render import write_site
    from regbench.site.store import read_store
    from regbench.tracking import get_client

    uri = check_store()
    check_out(out)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per file
    client = get_client()
    with tempfile.TemporaryDirectory(prefix="regbench-site-") as tmp:
        work, site = Path(tmp) / "artifacts", Path(tmp) / "site"
        site.mkdir()
        view = read_store(client, uri, work)
        counts = write_site(view, site)
        (site / MARKER).write_text("written by `regbench site`; rebuilt in full each time\n")
        _replace(out.expanduser().resolve(), site)
    return counts | {"uri": uri}


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    out = Path(args.out) if args.out else default_out()
    try:
        counts = build(out)
    except ConfigError as e:
        print(f"regbench site: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    index = out.expanduser().resolve() / "index.html"
    if not counts["reproductions"] and not counts["comparisons"]:
        extra = (
            f" ({counts['without_report']} without a report)" if counts["without_report"] else ""
        )
        print(
            f"regbench site: the store {counts['uri']} holds no reproduction reports or "
            f"comparisons{extra}; wrote a page that says so: {index}"
        )
        return
    if counts["failed_runs"]:
        print(
            f"regbench site: {counts['failed_runs']} runs FAILED or KILLED in the "
            "reproductions' experiments; their pages list them"
        )
    print(
        f"site: {index} ({counts['reproductions']} reproductions, {counts['comparisons']} "
        f"comparisons, {counts['flips']} verdict changes in the history); "
        "serve it with `make site`"
    )
