"""The numerics check: one training step's gradients of every model family, through
every batch transform that applies to it, against a float64 reference of the same step,
in worker processes with 1 and 2 threads (issue 19).

Kernels differ by CPU (AVX2, AVX-512, ARM), thread count and library version, and a
green CI run on one CPU says nothing about another: oneDNN's strided 1x1 convolution
backward-weights kernel crashed on one thread and returned gradients wrong by a factor
of 17 on two, on an AVX2-only AMD EPYC, for channels-last batches. ``tests/test_numerics.py``
runs this in ``make test``; ``regbench doctor`` runs it on a user's machine.

- :mod:`~regbench.numerics.cases`: families x inputs x transforms, composed from conf/
- :mod:`~regbench.numerics.step`: one step in float32 vs float64, the error and tolerance
- :mod:`~regbench.numerics.worker`: the process that runs cases (it may crash or hang)
- :mod:`~regbench.numerics.runner`: workers per thread count; crashes and hangs as outcomes
- :mod:`~regbench.numerics.doctor`: ``regbench doctor``, the table and exit status
"""

from regbench.numerics.cases import FAMILIES, Case, plan
from regbench.numerics.runner import Outcome, run_cases

__all__ = ["FAMILIES", "Case", "Outcome", "plan", "run_cases"]
