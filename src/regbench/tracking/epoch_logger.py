"""The Lightning logger of a run: per-epoch metrics into an existing MLflow run
(:class:`~regbench.tracking.TrackedRun`), several epochs per store write."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from regbench.tracking.store import TrackedRun, deferred_sigint


class MlflowEpochLogger(Logger):
    """Lightning logger writing to an existing MLflow run, stepped by epoch: every epoch,
    or epochs ``n-1, 2n-1, ...`` and the last one with ``every_n_epochs=n``.

    Lightning reports an epoch in two calls (the validation metrics, then the training
    metrics); they are merged into one epoch, stamped when it is complete. Epochs are
    written with their stamps in one ``log_batch`` at most every ``flush_every_s`` seconds
    (the first at once; 0: every epoch), and at the end of fit and of test, on an
    interrupt or an error (Lightning finalizes the logger then): a write costs a database
    round trip (~5 ms of SQLAlchemy work on the SQLite store) whatever its size, and a
    batched group of S runs would otherwise pay S of them every epoch. With
    ``background=True`` the batches are written by one writer thread, so training does
    not wait for the store; :meth:`finalize` waits for the last batch and re-raises any
    error the writer met.
    """

    def __init__(
        self,
        run: TrackedRun,
        background: bool = False,
        every_n_epochs: int = 1,
        flush_every_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.run = run
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.flush_every_s = float(flush_every_s)
        self.last: dict[str, float] = {}  # latest value of every metric logged
        self._step: int | None = None
        self._buffer: dict[str, float] = {}
        self._pending: list[tuple[str, float, int, int]] = []  # (key, value, ms, step)
        self._written = float("-inf")  # monotonic time of the last write
        self._writer = _BatchWriter(run) if background else None

    @classmethod
    def from_config(cls, run: TrackedRun, logger_cfg: Mapping[str, Any]) -> MlflowEpochLogger:
        """The logger ``conf/logger/mlflow.yaml`` describes (``cfg.logger``)."""
        return cls(
            run,
            bool(logger_cfg.get("background", False)),
            logger_cfg.get("every_n_epochs", 1),
            logger_cfg.get("flush_every_s", 0.0),
        )

    @property
    def name(self) -> str:
        return "mlflow"

    @property
    def version(self) -> str:
        return self.run.run_id

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Params are logged from the resolved config by :func:`tracked_run`."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = int(metrics.pop("epoch", step or 0))
        if epoch != self._step:
            if self._step is not None and (self._step + 1) % self.every_n_epochs:
                self._buffer.clear()  # an epoch between logged ones (logger.every_n_epochs)
            self.flush()
            self._step = epoch
        values = {k: float(v) for k, v in metrics.items()}
        self._buffer.update(values)
        self.last.update(values)
        # train/* is the last report of an epoch; every_n_epochs > 1 holds the epoch until
        # the next one starts (dropped then, unless it is a logged epoch) or fit ends
        # (Lightning finalizes the logger: the last epoch is always logged).
        if self.every_n_epochs == 1 and any(k.startswith("train/") for k in values):
            self.flush()

    def flush(self, force: bool = False) -> None:
        """Close the buffered epoch; write what is pending if ``flush_every_s`` has passed
        since the last write (or ``force``)."""
        if self._buffer:
            batch, self._buffer = self._buffer, {}
            ms, step = int(time.time() * 1000), self._step or 0
            self._pending += [(k, v, ms, step) for k, v in batch.items()]
        if not self._pending:
            return
        if force or time.monotonic() - self._written >= self.flush_every_s:
            items, self._pending = self._pending, []
            self._written = time.monotonic()
            if self._writer is not None:
                self._writer.put(items)
            else:
                _log_metric_items(self.run, items)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush(force=True)
        if self._writer is not None:
            self._writer.join()


MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


def _log_metric_items(run: TrackedRun, items: Sequence[tuple[str, float, int, int]]) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(k, v, ms, step) for k, v, ms, step in items]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        with deferred_sigint():
            run.client.log_batch(
                run.run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH], synchronous=True
            )


class _BatchWriter:
    """A writer thread for metric batches, in order. It runs from the first batch to the
    next :meth:`join` (Lightning finalizes after fit and again after test), so no idle
    thread outlives a run; an error it met is re-raised by :meth:`join`."""

    def __init__(self, run: TrackedRun) -> None:
        import queue

        self.run = run
        self._queue: queue.Queue = queue.Queue()
        self._thread = None
        self._error: BaseException | None = None

    def _loop(self) -> None:
        while (items := self._queue.get()) is not None:
            if self._error is None:
                try:
                    _log_metric_items(self.run, items)
                except BaseException as e:  # re-raised in the training thread by join()
                    self._error = e

    def put(self, items: list[tuple[str, float, int, int]]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="regbench-mlflow", daemon=True)
            self._thread.start()
        self._queue.put(items)

    def join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
