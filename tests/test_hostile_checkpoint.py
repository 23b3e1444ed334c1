"""A pickle planted in a checkpoint runs nothing: every checkpoint load is `weights_only=True`."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from training.prefix_tuning import load_base
from training.session import STATE_FILE, CheckpointError, load_state


class _Planted:
    """What an attacker with write access to the bucket saves: unpickling calls os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_planted_pickle_in_a_checkpoint_executes_nothing(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "checkpoint_000001"
    ckpt.mkdir()
    state = {"step": 10, "model": {"w": torch.zeros(2)}, "history": [_Planted(marker)]}
    if how == "torch.save":
        torch.save(state, ckpt / STATE_FILE)
    else:
        (ckpt / STATE_FILE).write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(CheckpointError, match=r"refused checkpoint .*state\.pt: not a plain tensor state"):
        load_state(ckpt / STATE_FILE)  # what a Ray worker's resume calls (RaySession.restore)
    with pytest.raises(CheckpointError):
        load_base(ckpt)  # prefix tuning's `init_from`
    assert not marker.exists()


def test_a_plain_state_still_loads(tmp_path: Path) -> None:
    state = {
        "step": 3,
        "model": {"w": torch.ones(2)},
        "history": [{"loss": 1.5}],
        "rng": torch.get_rng_state(),
    }
    torch.save(state, tmp_path / STATE_FILE)
    back = load_state(tmp_path / STATE_FILE)
    assert (
        back["step"] == 3
        and torch.equal(back["model"]["w"], torch.ones(2))
        and back["history"] == [{"loss": 1.5}]
    )
