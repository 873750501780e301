"""Runs of a batched group in MLflow: each model its own child run, as if it ran alone.

For every member, :func:`run_members` opens the same run ``train.run`` opens (name from
the varied axes, params from the resolved config, ``config.yaml``, the data fingerprint,
parameter count and environment tags) plus ``regbench.exec=batched``, and logs through
the same :class:`~regbench.tracking.epoch_logger.MlflowEpochLogger` in the order Lightning calls it:
each epoch's val then train metrics, the diagnostics at the last epoch's step, the test
metrics at step ``max_epochs``. A member that fails ends FAILED with its reason; the
others finish. Members that cannot batch run through ``train.run`` one by one, tagged
``regbench.exec=single: <why>``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from omegaconf import DictConfig

from regbench import tracking
from regbench.batched.plan import EXEC_TAG, Member, device_of, make_groups, unbatchable
from regbench.tracking import artifacts, lineage
from regbench.tracking.cost import CostTimer, timer
from regbench.tracking.epoch_logger import MlflowEpochLogger

Result = dict | BaseException


def build_member(cfg: DictConfig, label: Sequence[str], tags: dict | None) -> Member:
    from regbench.diagnostics import DiagnosticsCallback
    from regbench.train import build

    splits, data, module = build(cfg)
    m = Member(cfg, list(label), dict(tags or {}), splits, module, data.eval_batch_size)
    m.diag = next((c for c in module.reg.callbacks if isinstance(c, DiagnosticsCallback)), None)
    m.prep = data.normalize if splits.mean is not None else None
    return m


def run_single(cfg, label, parent_run_id, tags, reason: str) -> dict:
    """``train.run``, the run tagged ``regbench.exec=single: <reason>``."""
    from regbench.train import run

    tags = {**(tags or {}), EXEC_TAG: f"single: {reason}"[:5000]}
    return run(cfg, label, parent_run_id=parent_run_id, tags=tags)


def run_members(
    cfgs: Sequence[DictConfig],
    labels: Sequence[Sequence[str]],
    parent_run_id: str | None = None,
    tags: Sequence[dict | None] | None = None,
) -> list[Result]:
    """Train ``cfgs`` (batched where possible); one result per config, in order: the final
    metrics with ``run_id`` (as ``train.run`` returns), or the exception it failed with."""
    tags = list(tags or [None] * len(cfgs))
    results: list[Result | None] = [None] * len(cfgs)
    members, index = [], {}
    for i, cfg in enumerate(cfgs):
        try:
            m = build_member(cfg, labels[i], tags[i])
        except Exception as e:  # a bad config fails alone, before any run exists
            results[i] = e
            continue
        reason = unbatchable(m)
        if reason:
            results[i] = _guard(run_single, cfg, labels[i], parent_run_id, tags[i], reason)
            continue
        index[id(m)] = i
        members.append(m)
    for group in make_groups(members):
        for m, res in zip(group, run_group(group, parent_run_id), strict=True):
            results[index[id(m)]] = res
    return results


def _guard(fn, *args) -> Result:
    try:
        return fn(*args)
    except Exception as e:
        return e


def run_group(members: Sequence[Member], parent_run_id: str | None) -> list[Result]:
    """One batched program for ``members`` (a group from :func:`make_groups`)."""
    from regbench.batched.loop import GroupLoop

    device = device_of(members[0].cfg)
    opened, loggers, results = [], [], [None] * len(members)
    try:
        for m in members:
            _open_run(m, parent_run_id, device, opened, loggers)
        loop = GroupLoop(members, device)
        timers = [Shares(m.cfg.trainer) for m in members]
        bar = _epoch_bar(members)
        t0 = time.perf_counter()

        def report(i: int, metrics: dict, epoch: int) -> None:
            if metrics:
                loggers[i].log_metrics({**metrics, "epoch": epoch}, step=epoch)
                timers[i].seen(metrics, epoch, time.perf_counter() - t0, len(loop.alive))
                if bar is not None:  # an epoch ends with the last model's train/ metrics
                    bar.seen(metrics)
                    if i == loop.alive[-1] and "train/loss" in metrics:
                        bar.epoch_done(epoch + 1)

        def fail(i: int, error: BaseException) -> None:
            error.run_id = loggers[i].run.run_id  # the sweep records the failed run
            results[i] = error
            opened[i].__exit__(type(error), error, error.__traceback__)
            opened[i] = None

        diagnose = _diagnoser(members, loggers, device)
        diag_every = members[0].diag.every_n_epochs if members[0].diag else 0
        try:
            loop.fit(report, fail, diag_every, diagnose)
        finally:  # also on Ctrl-C: what is printed next starts on a fresh line
            if bar is not None:
                bar.close()
        fit_s, n = time.perf_counter() - t0, len(loop.alive)
        for i, test in loop.finish(diagnose).items():
            loggers[i].finalize("success")  # Lightning finalizes after fit, then tests
            loggers[i].log_metrics({**test, "epoch": loop.epochs}, step=loop.epochs)
            loggers[i].finalize("success")
            spent = timers[i].metrics(fit_s / max(n, 1), loop.epochs)
            loggers[i].run.log_metrics(spent, step=loop.epochs)
            if timers[i].tags():
                loggers[i].run.set_tags(timers[i].tags())
            if members[i].cfg.logger.save_model:  # unstacked by loop.finish: its own weights
                artifacts.log_state_dict(loggers[i].run, members[i].module.model)
            results[i] = {**loggers[i].last, **spent, "run_id": loggers[i].run.run_id}
    except BaseException as e:  # interrupted or broken: every open run ends with it
        for i, cm in enumerate(opened):
            if cm is not None and results[i] is None:
                cm.__exit__(type(e), e, e.__traceback__)
                results[i] = e
        if not isinstance(e, Exception):
            raise
        return [r if r is not None else e for r in results]
    for cm in opened:
        if cm is not None:
            cm.__exit__(None, None, None)
    return results


def _epoch_bar(members: Sequence[Member]):
    """The epoch bar a single run shows (``trainer.progress_bar``), once for the group:
    named by what its models' run names share, with the seeds, and the models' means."""
    if not any(m.cfg.trainer.get("progress_bar", False) for m in members):
        return None
    from regbench.progress import GroupEpochBar

    names = [tracking.run_name(m.cfg, m.label).split("-") for m in members]
    shared = [t for t in names[0][:-1] if all(t in n for n in names[1:])]  # [-1]: the seed
    seeds = sorted({int(m.cfg.seed) for m in members})
    span = seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2
    seed_text = f"s{seeds[0]}-{seeds[-1]}" if span else "s" + ",".join(map(str, seeds))
    name = "-".join([*shared, seed_text])
    return GroupEpochBar(name, len(members), int(members[0].cfg.trainer.max_epochs))


def _open_run(m: Member, parent_run_id, device, opened: list, loggers: list) -> None:
    """The member's MLflow run as ``train.run`` opens it (name, params, config, tags,
    data inputs, environment), plus ``regbench.exec=batched``; its context manager goes
    to ``opened`` as soon as it exists (so a failure closes it), its logger to ``loggers``."""
    t = {
        "data.fingerprint": m.splits.fingerprint(),
        "model.params": sum(p.numel() for p in m.model.parameters()),
        **m.tags,
        EXEC_TAG: "batched",
    }
    name = tracking.run_name(m.cfg, m.label)
    cm = tracking.tracked_run(m.cfg.experiment_name, name, m.cfg, t, parent_run_id)
    run = cm.__enter__()
    opened.append(cm)
    _log_extras(run, m, t["data.fingerprint"])
    run.set_tags(lineage.environment_tags(str(device)))
    loggers.append(MlflowEpochLogger.from_config(run, m.cfg.logger))
    m.module.model.to(device)


def _log_extras(run, m: Member, fingerprint: str) -> None:
    """What ``train.run`` logs beside the config: the size and the reg list as params,
    the data set as MLflow dataset inputs."""
    n_params = sum(p.numel() for p in m.model.parameters())
    reg = f"[{','.join(m.cfg.get('reg') or {})}]"
    tracking.log_params(run.client, run.run_id, {"model.params": str(n_params), "reg": reg})
    run.log_inputs(lineage.dataset_inputs(m.splits, m.cfg.data, fingerprint))


class Shares(CostTimer):
    """:mod:`regbench.tracking.cost`'s ``time/`` metrics for a model of a group: its share of the
    group's wall time (the group's time over the models training in it)."""

    def __init__(self, trainer_cfg: DictConfig) -> None:
        t = timer(trainer_cfg)
        super().__init__(t.metric, t.value, t.mode)
        self.t0, self.elapsed = 0.0, 0.0

    def seen(self, metrics: dict, epoch: int, elapsed: float, n_models: int) -> None:
        if any(k.startswith("train/") for k in metrics):  # the last report of an epoch
            self.elapsed = elapsed / max(n_models, 1)
            self.epoch_ends.append(self.elapsed)
        if self.metric in metrics and self.to_target is None:
            self.seen_metric = True
            v = metrics[self.metric]
            if v >= self.value if self.mode == "max" else v <= self.value:
                self.to_target = (elapsed / max(n_models, 1), epoch)

    def metrics(self, fit_s: float, epochs: int) -> dict[str, float]:
        return super().metrics(fit_s)


def _diagnoser(members: Sequence[Member], loggers, device):
    """``diagnose(i, epoch)``: the diagnostics callback's work on member i's own model."""
    from regbench.diagnostics import EvalData, diagnose

    def run(i: int, epoch: int) -> None:
        m = members[i]
        if m.diag is None:
            return
        s, d = m.splits, m.diag
        train = EvalData(s.x_train, s.y_train, d.eval_batch_size, device, m.prep)
        test = EvalData(s.x_test, s.y_test, d.eval_batch_size, device, m.prep)
        # its train-mode pass draws from the member's own streams (DIAG counters)
        bs = int(m.cfg.data.batch_size)
        values = diagnose(m.model, train, test, bs, d.threshold, epoch, d.probes)
        loggers[i].log_metrics(values, step=epoch)

    return run
