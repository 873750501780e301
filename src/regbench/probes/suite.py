"""The probes a run asks for in its ``diag:`` section, as one callable the diagnostics
run on the trained model at the end of training (single runs and every model of a
batched group alike)::

    diag:
      ablation: {fractions: [0.1, 0.25, 0.5], draws: 20}
      pruning: {sparsities: [0.5, 0.8, 0.9], random_draws: 5}
      activations: {enabled: true, near_zero: 0.01}

Empty lists and ``enabled: false`` (the defaults, conf/train.yaml) turn a probe off.
Settings are checked when the run is built, before training, with one-line errors.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig
from torch import nn

from regbench.errors import ConfigError, in_range, positive_int
from regbench.probes.ablation import ablation_probe
from regbench.probes.activations import activations_probe
from regbench.probes.evaluation import Batches
from regbench.probes.pruning import pruning_probe
from regbench.probes.seeding import generator


@dataclass(frozen=True)
class ProbeSuite:
    """What to probe and the run's seed (the root of every probe's random stream)."""

    seed: int
    ablation_fractions: tuple[float, ...] = ()
    ablation_draws: int = 10
    prune_sparsities: tuple[float, ...] = ()
    prune_draws: int = 5
    activations: bool = False
    near_zero: float = 0.01

    @property
    def empty(self) -> bool:
        return not (self.ablation_fractions or self.prune_sparsities or self.activations)

    def __call__(self, model: nn.Module, test: Batches) -> dict[str, float]:
        """Every enabled probe of ``model`` on the test batches, as ``diag/`` metrics."""
        out: dict[str, float] = {}

        def gen_for(purpose: str):
            return generator(self.seed, purpose)

        if self.ablation_fractions:
            out.update(
                ablation_probe(model, test, self.ablation_fractions, self.ablation_draws, gen_for)
            )
        if self.prune_sparsities:
            out.update(pruning_probe(model, test, self.prune_sparsities, self.prune_draws, gen_for))
        if self.activations:
            out.update(activations_probe(model, test, self.near_zero))
        return out


def _fractions(key: str, values) -> tuple[float, ...]:
    """A list of numbers in [0, 1), each checked with its index in the message."""
    if not isinstance(values, ListConfig | list | tuple):
        raise ConfigError(f"{key}={values!r} is not valid; it must be a list of numbers in [0, 1)")
    for i, v in enumerate(values):
        in_range(f"{key}[{i}]", v, 0.0, 1.0, hi_open=True)
    return tuple(float(v) for v in values)


def probe_suite(diag: DictConfig | None, seed: int) -> ProbeSuite | None:
    """The suite from the ``diag`` section (None when every probe is off or the section
    predates the probes); raises :class:`ConfigError` on bad settings."""
    if diag is None:
        return None
    ablation = diag.get("ablation") or {}
    pruning = diag.get("pruning") or {}
    acts = diag.get("activations") or {}
    suite = ProbeSuite(
        seed=int(seed),
        ablation_fractions=_fractions("diag.ablation.fractions", ablation.get("fractions", [])),
        ablation_draws=ablation.get("draws", 10),
        prune_sparsities=_fractions("diag.pruning.sparsities", pruning.get("sparsities", [])),
        prune_draws=pruning.get("random_draws", 5),
        activations=acts.get("enabled", False),
        near_zero=acts.get("near_zero", 0.01),
    )
    positive_int("diag.ablation.draws", suite.ablation_draws)
    positive_int("diag.pruning.random_draws", suite.prune_draws)
    if not isinstance(suite.activations, bool):
        raise ConfigError(
            f"diag.activations.enabled={suite.activations!r} is not valid; it must be true or false"
        )
    in_range("diag.activations.near_zero", suite.near_zero, 0.0, 1.0)
    return None if suite.empty else suite
