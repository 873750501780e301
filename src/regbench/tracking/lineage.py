"""Where a run comes from: its data as MLflow dataset inputs (the UI's Dataset column and
lineage view) and its code, library versions and machine as tags (:func:`environment_tags`).

One input per split (context ``train``/``val``/``test``), with the data set's name, a
digest of the split's tensors (so two runs trained on the same data show the same
digest, and label noise or another validation carve shows a different one), its source
(the generator's arguments for MNIST-1D, the download folder for torchvision sets) and
its shape as the profile.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from regbench.paths import ROOT


def dataset_inputs(splits, data_cfg, train_digest: str | None = None) -> list:
    """The run's data as MLflow dataset inputs, one per split (context train/val/test):
    name, digest (hash of the split's inputs and labels, label noise included), source
    (the generator's arguments, or the download folder) and shape, so the UI's Dataset
    column and lineage view are filled."""
    import hashlib
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    name = str(splits.name)
    if name.replace("_", "") == "mnist1d":
        keys = ("n_train", "n_test", "generator_seed")
        args = {k: data_cfg.get(k) for k in keys}
        source_type, source = "code", {"tags": {"generator": "mnist1d.data.make_dataset", **args}}
    else:
        source_type, source = "local", {"uri": str(Path(str(data_cfg.get("data_dir", "data"))))}
    out = []
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if len(y) == 0:
            continue
        if split == "train" and train_digest:  # the run's data.fingerprint, already hashed
            digest = train_digest
        else:  # the same hash as Splits.fingerprint, over this split
            h = hashlib.sha256()
            for t in (x, y):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            digest = h.hexdigest()[:16]
        profile = {
            "num_rows": len(y),
            "features_shape": list(x.shape),
            "features_dtype": str(x.dtype).removeprefix("torch."),
            "targets_shape": list(y.shape),
            "num_classes": int(splits.num_classes),
        }
        ds = Dataset(
            name=name,
            digest=digest,
            source_type=source_type,
            source=json.dumps(source),
            profile=json.dumps(profile),
        )
        out.append(DatasetInput(ds, tags=[InputTag("mlflow.data.context", split)]))
    return out


def _git(*args: str) -> str:
    """``git ARGS`` in the checkout, "" if it fails. ``--no-optional-locks``: ``git status``
    would otherwise take ``.git/index.lock`` to refresh the index, and a run killed during
    it (a SIGKILLed sweep worker) would leave the lock behind and block the user's git."""
    cmd = ["git", "--no-optional-locks", *args]
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_tags(device: str = "cpu") -> dict[str, str]:
    """What the run's numbers were computed on: the CPU, its logical cores, torch's
    intra-op threads at the time of the call (kernels' float order, and the speed, depend
    on them) and, on a CUDA device, the GPU's name."""
    import os

    import torch

    tags = {
        "machine.cpu": _cpu_model(),
        "machine.cores": str(os.cpu_count() or 0),
        "machine.threads": str(torch.get_num_threads()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        tags["machine.gpu"] = torch.cuda.get_device_name(torch.device(device))
    return tags


def environment_tags(device: str = "cpu") -> dict[str, str]:
    import mlflow
    import pytorch_lightning
    import torch

    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git.commit": commit,
        "git.dirty": str(bool(dirty)).lower() if commit != "unknown" else "unknown",
        "version.python": platform.python_version(),
        "version.torch": torch.__version__,
        "version.lightning": pytorch_lightning.__version__,
        "version.mlflow": mlflow.__version__,
        "version.regbench": __import__("regbench").__version__,
        "device": device,
        **machine_tags(device),
    }
