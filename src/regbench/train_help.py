"""``regbench train --help``: what a user composes, read from conf/ so it cannot go stale.

Hydra's own ``--help`` opens with "cli is powered by Hydra" and lists every config group,
the building blocks of other files (``shared``, ``experiment/dmn_arm``) included; this
lists the groups README documents, their choices and defaults, the common keys with
their defaults, the flags, and examples. Hydra's flags stay under ``--hydra-help``.
"""

from __future__ import annotations

#: config groups a user composes (conf/<group>/*.yaml; `shared` and the experiment
#: subfolders are building blocks of other files, not choices)
PUBLIC_GROUPS = ("data", "model", "optim", "scheduler", "trainer", "logger", "reg", "experiment")
#: keys people set most, shown with their defaults in `regbench train --help`
COMMON_KEYS = (
    "seed",
    "experiment_name",
    "trainer.max_epochs",
    "data.batch_size",
    "data.label_noise",
    "model.width",
    "model.depth",
    "model.norm",
    "model.dropout",
    "model.block",
    "optim.lr",
    "optim.weight_decay",
)


def train_help() -> str:
    """``regbench train --help``: the config groups with their choices and defaults, the
    common keys with theirs, the flags, examples. Read from conf/, so it cannot go stale."""
    import textwrap

    from omegaconf import OmegaConf

    from regbench.config import compose
    from regbench.paths import CONF_DIR

    cfg = compose([])
    chosen: dict[str, str] = {}
    for entry in OmegaConf.to_container(OmegaConf.load(CONF_DIR / "train.yaml"))["defaults"]:
        if isinstance(entry, dict):
            (group, choice), *_ = entry.items()
            chosen[group] = "none" if choice is None else str(choice)
    lines = []
    for group in PUBLIC_GROUPS:
        names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        default = chosen.get(group, "none")
        text = ", ".join(f"{n}*" if n == default else n for n in names)
        if group == "reg":
            text = f"(a list, default []: reg=[l1,max_norm]) {text}"
        elif default == "none":
            text = f"(default: none) {text}"
        lines += textwrap.wrap(
            text, 88, initial_indent=f"  {group:<11}", subsequent_indent=" " * 13
        )
    keys = []
    for key in COMMON_KEYS:
        value = OmegaConf.select(cfg, key)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        keys.append(f"{key}={value}".replace("'", "").replace(", ", ","))
    key_lines = textwrap.wrap(", ".join(keys), 86, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(
        [
            "usage: regbench train [KEY=VALUE | GROUP=CHOICE ...]",
            "       regbench train -m KEY=A,B [...]      a grid: every combination, batched",
            "       regbench train --cfg job [...]       print the composed config, train nothing",
            "",
            "Train one model with PyTorch Lightning, log it to MLflow (mlruns/mlflow.db, or",
            "$MLFLOW_TRACKING_URI) and print its test accuracy, run id and UI link. A bad key,",
            "value or choice stops before training with one line and exit status 2.",
            "",
            "config groups (GROUP=CHOICE; * marks the default):",
            *lines,
            "",
            "common keys, with their defaults (every key: regbench train --cfg job):",
            *key_lines,
            "",
            "options:",
            "  -m, --multirun   a grid over the comma-separated values, one MLflow parent run;",
            "                   trains batched groups in this process (hydra/launcher=local:",
            "                   parallel processes, hydra/launcher=slurm: a SLURM cluster)",
            "  --cfg job        print the composed config (add --resolve) and exit",
            "  --hydra-help     Hydra's own flags",
            "",
            "examples:",
            "  regbench train model.width=64 trainer.max_epochs=3 seed=7",
            "  regbench train model.norm=batch model.dropout=0.5 "
            "'model.block=[linear,dropout,norm,act]'",
            "  regbench train optim=sgd optim.lr=0.05 scheduler=step 'reg=[l2]'",
            "  regbench train -m 'reg=[l1],[l2],[]' seed=0,1,2 trainer.max_epochs=3",
        ]
    )
