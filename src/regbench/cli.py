"""``regbench train | sweep | compare | report | reproduce | site | bench``.

``train`` is a Hydra app (overrides, ``-m`` multirun, ``--cfg job``); the others take
ordinary flags. Heavy imports happen inside each command so ``--help`` is quick.
"""

from __future__ import annotations

import sys

USAGE = """usage: regbench <command> [args]   (regbench <command> --help for each)

Regularization experiments: train, sweep and compare runs tracked in MLflow, and
reproduce published results with a verdict per claim.

commands:
  train [overrides]      one run (Hydra overrides; -m for a grid, --cfg job to print)
  sweep SPEC.yaml        an Optuna study (or grid) from sweeps/, resumable
  compare NAME           a grid's or sweep's runs over seeds: table, paired diffs, figures
  reproduce NAME         a published result: its grid, then a report with verdicts
  report NAME            rebuild a reproduction's report from MLflow, no training
  site [--out DIR]       a static HTML site of every report in the store (reports/site/)
  bench                  full stack vs a hand-written PyTorch loop (timing)
  doctor                 check this machine's gradients against float64 (no runs)

examples:
  regbench train model.width=64 trainer.max_epochs=3 seed=7
  regbench train -m 'reg=[l1],[l2],[]' seed=0,1,2 trainer.max_epochs=3
  regbench compare multirun-20260101-120000-abc123 --baseline 'reg=[]'
  regbench reproduce variance_shift --scale tiny
"""


def ui_link(run_id: str) -> str:
    """Where to see the run: ``make ui`` and the run's page there for the default store;
    for ``MLFLOW_TRACKING_URI``, the server's page, or the ``mlflow ui`` command that
    serves that store (``make ui`` shows the default store only).
    ``workflowType=machine_learning`` opens MLflow 3.17's model-training view (runs,
    metrics); without it the UI opens on its GenAI view."""
    from regbench.tracking import default_tracking_uri, get_client, tracking_uri

    exp_id = get_client().get_run(run_id).info.experiment_id
    page = f"#/experiments/{exp_id}/runs/{run_id}?workflowType=machine_learning"
    uri = tracking_uri()
    if uri == default_tracking_uri():
        return f"make ui, then http://127.0.0.1:5000/{page}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"uv run mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{page}"


def _fail(cmd: str, error: Exception) -> None:
    """Bad input: one line on stderr, exit code 2 (as argparse does), no traceback."""
    print(f"regbench {cmd}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _check_train_args(argv: list[str]):
    """``regbench train``'s bad input, one line and exit 2, before Hydra starts anything:
    a single run's overrides (types, ranges, choices; its builders check the rest before
    its MLflow run exists), every job of a ``-m`` grid built before any trains and before
    the grid's parent run exists, and ``--cfg`` checked as the run it prints. Help,
    completion and other config sources are left to Hydra; ``hydra.*`` overrides too.
    Returns ``(cfg, overrides)`` for one plain run (no flags, no ``hydra.*`` overrides),
    which needs no Hydra app; else None."""
    import argparse

    from hydra._internal.utils import get_args_parser

    from regbench.errors import ConfigError
    from regbench.validate import check_config, check_grid, check_job, compose_checked

    def usage_error(message: str):
        raise argparse.ArgumentError(None, message)

    parser = get_args_parser()
    parser.error = usage_error  # quietly: Hydra reports its own usage errors below
    try:
        args = parser.parse_args(argv)
    except argparse.ArgumentError:
        return
    hydra_only = (args.help, args.hydra_help, args.shell_completion, args.info)
    other_source = (args.config_path, args.config_name, args.config_dir, args.experimental_rerun)
    if any(hydra_only) or any(other_source):
        return
    overrides = [o for o in args.overrides if not o.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        if args.multirun:
            check_grid(overrides)
        elif args.cfg:
            check_job(compose_checked(overrides))
        else:  # types, ranges and choices before torch and Lightning are imported (~4 s)
            cfg = compose_checked(overrides)
            check_config(cfg)
            if len(overrides) == len(argv):
                return cfg, overrides
    except ConfigError as e:
        _fail("train", e)
    return None


def _train(argv: list[str]) -> None:
    from regbench import runtime
    from regbench.config import register_resolvers

    if "--help" in argv or "-h" in argv:  # Hydra's --help lists internal groups
        from regbench.train_help import train_help

        print(train_help())
        return
    register_resolvers()
    plain = _check_train_args(argv)  # Hydra would print composition errors on several lines
    if plain is not None:
        # One run, composed and checked: Hydra's app would compose it twice more and make
        # an (empty) output folder per run; nothing else here needs it.
        runtime.setup()
        _run_one(*plain)
        return

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from regbench.paths import CONF_DIR

    @hydra.main(config_path=str(CONF_DIR), config_name="train", version_base="1.3")
    def app(cfg: DictConfig) -> float:
        runtime.setup()  # here too: multirun launchers run this in fresh processes
        return _run_one(cfg, list(HydraConfig.get().overrides.task))

    sys.argv = ["regbench train", *argv]
    app()


def _run_one(cfg, overrides: list[str]) -> float:
    """Train ``cfg``; print its result and where to see it; return its test accuracy."""
    from regbench.errors import ConfigError
    from regbench.train import run

    try:
        metrics = run(cfg, overrides)
    except ConfigError as e:  # raised before any MLflow run exists
        _fail("train", e)
    print(
        f"\nrun {metrics['run_id']} finished: test/acc={metrics['test/acc']:.4f} "
        f"test/loss={metrics['test/loss']:.4f}\n"
        f"open it in MLflow: {ui_link(metrics['run_id'])}"
    )
    return metrics["test/acc"]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # a command is required: usage on stderr, exit 2 (as argparse does)
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    if argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    cmd, rest = argv[0], argv[1:]
    from regbench import runtime

    if cmd != "train":  # train sets up after checking its overrides (its Hydra app does)
        runtime.setup()
    try:
        _dispatch(cmd, rest)
    except KeyboardInterrupt:  # Ctrl-C: the run is KILLED in MLflow, the study resumable
        runtime.INTERRUPTED.set()  # a grid's parent run, closed at exit, ends KILLED too
        print(f"regbench {cmd}: interrupted; {_after_interrupt(cmd, rest)}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(130) from None


def _after_interrupt(cmd: str, rest: list[str]) -> str:
    """What a Ctrl-C left behind and what rerunning the command does, per command."""
    if cmd == "train" and ("-m" in rest or "--multirun" in rest):
        return (
            "runs in progress and the grid's parent run are marked KILLED; the same command "
            "resumes the grid (its finished jobs are kept; with the default batched "
            "launcher)"
        )
    if cmd == "sweep":
        return "runs in progress are marked KILLED; the same command resumes the study"
    if cmd == "reproduce":
        return "runs in progress are marked KILLED; the same command reuses finished runs"
    return "runs in progress are marked KILLED"


def _dispatch(cmd: str, rest: list[str]) -> None:
    if cmd == "train":
        _train(rest)
    elif cmd == "bench":
        from regbench.bench import main as bench_main

        bench_main(rest)
    elif cmd == "sweep":
        from regbench.sweep import main as sweep_main

        sweep_main(rest)
    elif cmd == "compare":
        from regbench.report.compare import main as compare_main
        from regbench.reproductions import compare_source

        compare_main(rest, resolve=compare_source)
    elif cmd == "doctor":
        from regbench.numerics.doctor import main as doctor_main

        doctor_main(rest)
    elif cmd in ("reproduce", "report"):
        from regbench.reproductions import main as repro_main

        repro_main(cmd, rest)
    elif cmd == "site":
        from regbench.site import main as site_main

        site_main(rest)
    else:
        print(f"regbench: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
