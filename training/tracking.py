"""Experiment tracking as TensorBoard event files: `tensorboard --logdir <storage root>/tensorboard`.

TensorBoard needs no server or account, reads local folders, and its event format is what
torchtitan and nanoGPT-style loops write too. Only rank 0 writes (`enabled=rank == 0`): every rank
sees the same all-reduced loss, and one writer per run keeps the curves single.

Local storage roots get the event files in place, so a running job can be watched live; for
`s3://` roots the files go to a local folder and are uploaded to the same key layout by `sync()`
(and on `close()`): TensorBoard reads `s3://` log dirs only with TensorFlow's filesystem plugins.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from core.storage import Storage

TENSORBOARD_PREFIX = "tensorboard"


def tensorboard_location(storage: Storage, run_name: str) -> tuple[Path, str | None]:
    """Where a run's event files are written and, for remote storage, the key prefix to upload to."""
    prefix = f"{TENSORBOARD_PREFIX}/{run_name}"
    local = storage.local_dir(prefix)
    if local is not None:
        return local, None
    return Path(tempfile.mkdtemp(prefix="lmforge-tb-")), prefix


def upload_dir(storage: Storage, local_dir: Path, prefix: str) -> list[str]:
    """Copy every file under `local_dir` to `<prefix>/<relative path>`; returns the keys written."""
    keys = []
    for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
        key = f"{prefix}/{path.relative_to(local_dir).as_posix()}"
        storage.upload_file(path, key)
        keys.append(key)
    return keys


def _flatten(values: dict[str, Any], parent: str = "") -> dict[str, bool | str | float]:
    """Nested config dicts as dotted keys; TensorBoard's HParams take scalars and strings only."""
    out: dict[str, bool | str | float] = {}
    for key, value in values.items():
        name = f"{parent}.{key}" if parent else str(key)
        if isinstance(value, dict):
            out |= _flatten(value, name)
        elif isinstance(value, bool | str | int | float):
            out[name] = value
        elif value is not None:
            out[name] = str(value)
    return out


class Tracker:
    """Scalars per step and the run's hyperparameters into one TensorBoard run folder.

    A disabled tracker (ranks other than 0) accepts every call and writes nothing. `purge_step`
    is the step a resumed run restarts from: TensorBoard then drops the earlier attempt's points
    at and after it, so a retried run shows one curve, not two overlapping ones.
    """

    def __init__(
        self,
        log_dir: Path | None,
        enabled: bool = True,
        *,
        purge_step: int | None = None,
        storage: Storage | None = None,
        upload_prefix: str | None = None,
    ) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self._storage, self._prefix = storage, upload_prefix
        self._writer = None
        if enabled and self.log_dir is not None:
            from tensorboardX import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            # tensorboardX names files by the second and reopens a same-named file empty: the
            # nanoseconds keep a quick second writer (a retry, a test) from erasing the first,
            # and sort the files in the order TensorBoard must read them.
            self._writer = SummaryWriter(
                str(self.log_dir),
                purge_step=purge_step,
                flush_secs=30,
                filename_suffix=f".{time.time_ns()}",
            )

    @classmethod
    def for_run(
        cls, storage: Storage, run_name: str, enabled: bool, purge_step: int | None = None
    ) -> Tracker:
        """The tracker for `<storage root>/tensorboard/<run_name>` (uploaded when remote)."""
        if not enabled:
            return cls(None, enabled=False)
        local, prefix = tensorboard_location(storage, run_name)
        return cls(local, purge_step=purge_step, storage=storage, upload_prefix=prefix)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """One point per numeric metric at `step`; None, strings and the `step` key are skipped."""
        if self._writer is None:
            return
        for name, value in metrics.items():
            if name != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self._writer.add_scalar(name, float(value), step)

    def log_hparams(self, hparams: dict[str, Any], metrics: tuple[str, ...] = ("loss", "val_loss")) -> None:
        """The run's config in TensorBoard's HParams tab, compared on the named scalar `metrics`."""
        if self._writer is None:
            return
        from tensorboardX.summary import hparams as hparams_summaries

        file_writer = self._writer._get_file_writer()  # the run's own file, not add_hparams' subfolder
        for summary in hparams_summaries(_flatten(hparams), dict.fromkeys(metrics, 0.0)):
            file_writer.add_summary(summary)

    def sync(self) -> None:
        """Flush, and upload the folder when the storage is remote (call at checkpoints)."""
        if self._writer is None:
            return
        self._writer.flush()
        if self._storage is not None and self._prefix is not None and self.log_dir is not None:
            upload_dir(self._storage, self.log_dir, self._prefix)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        if self._storage is not None and self._prefix is not None and self.log_dir is not None:
            upload_dir(self._storage, self.log_dir, self._prefix)
        self._writer = None
