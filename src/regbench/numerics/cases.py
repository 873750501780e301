"""The cases of the numerics check: every model family on the inputs it takes, with each
batch transform that applies to those inputs, composed from the real configs.

Inputs are shaped as the data sets are (CIFAR's (3, 32, 32) images, MNIST-1D's (40,)
signals, and (C, L) signals, where ``crop_flip`` crops along L) and drawn N(0, 1), as
normalised data are. Batches are small (8 images, 32 signals) so that the whole check
stays within seconds; the tolerance of :mod:`regbench.numerics.step` accounts for the
batch size. ResNet-18 runs at k = 4, inside the k < 8 range where oneDNN's strided 1x1
backward-weights kernel broke on AVX2 (issue 19); WRN-10-2's 1x1 shortcuts cover that
kernel at 32 and 64 channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from omegaconf import OmegaConf

from regbench.errors import ConfigError


@dataclass(frozen=True)
class Inputs:
    shape: tuple[int, ...]  # per sample
    batch: int
    transforms: tuple[str, ...]  # the batch transforms that apply ("none": no transform)
    dims: str  # the model's convolutions: "2-D" or "1-D"


INPUTS = {
    "image": Inputs((3, 32, 32), 8, ("none", "crop_flip", "mixup"), "2-D"),
    "mnist1d": Inputs((40,), 32, ("none", "mixup", "augment1d"), "1-D"),
    "signal": Inputs((1, 40), 32, ("crop_flip",), "1-D"),
}


@dataclass(frozen=True)
class Family:
    name: str
    overrides: tuple[str, ...]  # Hydra overrides of the model group (stochastic layers off)
    inputs: tuple[str, ...]
    widths: tuple[int, ...]  # model.width values


FAMILIES = (
    Family("mlp", ("model=mlp",), ("mnist1d",), (128,)),
    Family("resmlp", ("model=resmlp", "model.survival_last=1.0"), ("mnist1d",), (128,)),
    Family("resnet20", ("model=resnet20",), ("image", "mnist1d", "signal"), (16,)),
    Family("preresnet20", ("model=preresnet20",), ("image", "mnist1d", "signal"), (16,)),
    Family("resnet18", ("model=resnet18",), ("image", "mnist1d", "signal"), (4,)),
    Family("wrn", ("model=wrn", "model.depth=10", "model.widen=2"), ("image", "mnist1d"), (16,)),
    Family("cnn1d", ("model=cnn1d",), ("mnist1d", "signal"), (10,)),
)

#: every batch transform some input takes (the conf/reg names)
TRANSFORMS = sorted({t for i in INPUTS.values() for t in i.transforms} - {"none"})


@dataclass(frozen=True)
class Case:
    """One training step to check: a model built from ``model`` (the composed
    ``cfg.model``) on a batch of ``inputs``, through the ``reg`` entry ``transform``."""

    family: str
    inputs: str
    transform: str
    width: int
    model: dict
    reg: dict  # {transform: its composed cfg.reg entry}, {} for "none"
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.family} {INPUTS[self.inputs].dims} {self.transform} width={self.width}"

    def to_dict(self) -> dict:
        return asdict(self)


def family_names() -> list[str]:
    return [f.name for f in FAMILIES]


def check_families(names: Sequence[str]) -> list[str]:
    """``names`` validated against :data:`FAMILIES`, in the table's order."""
    known = family_names()
    for n in names:
        if n not in known:
            raise ConfigError(
                f"--family={n!r} is not a model family of the check; choose from: "
                f"{', '.join(known)}"
            )
    return [n for n in known if n in names]


def plan(families: Sequence[str] | None = None) -> list[Case]:
    """The cases of ``families`` (all by default), each composed from conf/ like a run."""
    from regbench.config import compose

    wanted = set(check_families(families) if families else family_names())
    cases = []
    for fam in FAMILIES:
        if fam.name not in wanted:
            continue
        for width in fam.widths:
            reg = f"reg=[{','.join(TRANSFORMS)}]"
            cfg = compose([*fam.overrides, f"model.width={width}", reg])
            model = OmegaConf.to_container(cfg.model, resolve=True)
            for inputs in fam.inputs:
                for t in INPUTS[inputs].transforms:
                    entry = {} if t == "none" else {t: OmegaConf.to_container(cfg.reg[t])}
                    cases.append(Case(fam.name, inputs, t, width, model, entry))
    return cases
