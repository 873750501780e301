"""regbench's Hydra launcher plugin (``hydra/launcher=batched``, the default of
``regbench train -m``). Hydra only instantiates launchers from the ``hydra_plugins``
namespace; the work is done by :mod:`regbench.sweep.launcher`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.plugins.launcher import Launcher


class BatchedLauncher(Launcher):
    """Trains the jobs of each Hydra batch as batched groups (:mod:`regbench.batched`),
    in this process; jobs that cannot batch run one by one, as Hydra's basic launcher."""

    def __init__(self) -> None:
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from regbench.sweep.launcher import launch

        return launch(self, job_overrides, initial_job_idx)
