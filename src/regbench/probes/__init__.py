"""Test-time probes of a trained model: what it does when parts of it are taken away or
looked at, beyond its test accuracy (docs/REPRODUCTIONS.md, atlas part 3).

- :mod:`~regbench.probes.ablation`: zero a random fraction of every activation layer's
  units (co-adaptation, Hinton et al. 2012, arXiv 1207.0580);
- :mod:`~regbench.probes.pruning`: zero the smallest-magnitude or random weights of every
  weight matrix (Han et al. 2015, arXiv 1506.02626);
- :mod:`~regbench.probes.activations`: mean, RMS and near-zero fraction of every
  activation layer's outputs (Srivastava et al. 2014, JMLR 15(56), sec. 7.2);
- :mod:`~regbench.probes.ensemble`: the averaged prediction of several trained models, or
  of one dropout model under several masks (Monte-Carlo dropout).

The first three are configured under the run's ``diag:`` section and logged under
``diag/`` at the end of training with the other diagnostics (:mod:`~regbench.probes.suite`);
the ensemble works on models read back from the store. Every random choice (which units,
which weights, which masks) comes from a generator of its own
(:func:`~regbench.probes.seeding.generator`), never from torch's global one.
"""

from regbench.probes.suite import ProbeSuite, probe_suite

__all__ = ["ProbeSuite", "probe_suite"]
