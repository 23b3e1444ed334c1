"""MFU arithmetic against hand-computed GPT-2 small numbers; TensorBoard files read back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.config import StorageConfig
from core.storage import open_storage
from training.metrics import flops_per_token, mfu, model_flops_for, peak_flops
from training.model import GPT, GPTConfig
from training.tracking import Tracker, upload_dir

# GPT-2 small (Radford et al. 2019) as nanoGPT builds it: tied head, biases, 1024 positions.
GPT2_SMALL = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
# By hand: wte 50257*768 = 38,597,376; wpe 1024*768 = 786,432; per block 2 LayerNorms (2*1536),
# c_attn 768*2304+2304, attn c_proj 768*768+768, c_fc 768*3072+3072, mlp c_proj 3072*768+768
# = 7,087,872, times 12 = 85,054,464; ln_f 1536. Total 124,439,808 ("124M").
GPT2_SMALL_PARAMS = 124_439_808
# 6 * (124,439,808 - 786,432) + 12 * 12 * 12 * 64 * 1024 = 741,920,256 + 113,246,208
GPT2_SMALL_FLOPS_PER_TOKEN = 855_166_464


def test_gpt2_small_flops_per_token_by_hand() -> None:
    with torch.device("meta"):  # shapes only: no 500 MB of weights to initialise
        n_params = GPT(GPT2_SMALL).num_params()
    assert n_params == GPT2_SMALL_PARAMS
    assert model_flops_for(GPT2_SMALL, n_params, seq_len=1024) == GPT2_SMALL_FLOPS_PER_TOKEN
    assert flops_per_token(123_653_376, 12, 12, 64, 1024) == GPT2_SMALL_FLOPS_PER_TOKEN
    # attention grows linearly with T: halving T removes half of the 113,246,208
    assert model_flops_for(GPT2_SMALL, n_params, seq_len=512) == 741_920_256 + 56_623_104


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989.4e12),  # the SXM5 part's name
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H100 NVL", 835e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA H200 NVL", 835e12),
        ("NVIDIA H100", None),  # no product named: not guessed as the SXM part
        ("NVIDIA GH200 480GB", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA A100-PCIE-40GB", 312e12),
        ("NVIDIA GeForce RTX 3090", None),
        ("cpu", None),
        ("", None),
        (None, None),
    ],
)
def test_peak_flops_from_device_names(name: str | None, peak: float | None) -> None:
    assert peak_flops(name) == peak


def test_mfu() -> None:
    # 100k tokens/s of GPT-2 small on one A100: 8.55166464e13 / 3.12e14
    assert mfu(100_000, GPT2_SMALL_FLOPS_PER_TOKEN, 312e12) == pytest.approx(0.27409181538461537, rel=1e-12)
    # 8 H100s at 1M tokens/s in total: each does 125k tokens/s
    assert mfu(1_000_000, GPT2_SMALL_FLOPS_PER_TOKEN, 989e12, devices=8) == pytest.approx(
        125_000 * 855_166_464 / 989e12, rel=1e-12
    )
    assert mfu(100_000, GPT2_SMALL_FLOPS_PER_TOKEN, None) is None  # CPU: no peak, no MFU


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tracker_writes_scalars_and_hparams_tensorboard_reads(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    log_dir = tmp_path / "tb" / "run-a"
    tracker = Tracker(log_dir, enabled=True)
    tracker.log_hparams({"train": {"lr": 0.003, "model_size": "tiny", "compile": False}, "workers": 2})
    tracker.log(1, {"step": 1, "loss": 5.5, "lr": 0.0003, "val_loss": None, "note": "x"})
    tracker.log(10, {"step": 10, "loss": 4.25, "lr": 0.003, "mfu": 0.375})
    tracker.close()
    tracker.close()  # idempotent

    # float32 on disk: chosen values are exact in binary
    assert _scalars(log_dir) == {
        "loss": [(1, 5.5), (10, 4.25)],
        "lr": [(1, pytest.approx(0.0003)), (10, pytest.approx(0.003))],
        "mfu": [(10, 0.375)],
    }
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["train.lr"].number_value == 0.003
    assert start.hparams["train.model_size"].string_value == "tiny"
    assert start.hparams["train.compile"].bool_value is False
    assert start.hparams["workers"].number_value == 2.0
    experiment = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
    metrics = plugin_data_pb2.HParamsPluginData.FromString(experiment).experiment.metric_infos
    assert [m.name.tag for m in metrics] == ["loss", "val_loss"]


def test_resumed_run_purges_the_failed_attempts_tail(tmp_path: Path) -> None:
    first = Tracker(tmp_path, enabled=True)
    for step in range(1, 11):
        first.log(step, {"loss": float(step)})
    first.close()
    # Ray Train restarts from a checkpoint at step 6: the earlier 6..10 must not stay visible
    second = Tracker(tmp_path, enabled=True, purge_step=6)
    for step in range(6, 9):
        second.log(step, {"loss": step + 0.5})
    second.close()
    kept = [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]
    assert _scalars(tmp_path)["loss"] == [*kept, (6, 6.5), (7, 7.5), (8, 8.5)]


def test_disabled_tracker_writes_nothing(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "rank1", enabled=False)
    tracker.log_hparams({"lr": 1.0})
    tracker.log(1, {"loss": 1.0})
    tracker.sync()
    tracker.close()
    assert not tracker.enabled and not (tmp_path / "rank1").exists()


def test_local_storage_writes_in_place(tmp_path: Path) -> None:
    storage = open_storage(StorageConfig(root=str(tmp_path)))
    tracker = Tracker.for_run(storage, "pretrain-e2e", enabled=True)
    tracker.log(3, {"loss": 2.5})
    tracker.close()
    assert tracker.log_dir == tmp_path / "tensorboard" / "pretrain-e2e"
    assert _scalars(tracker.log_dir) == {"loss": [(3, 2.5)]}
    assert not Tracker.for_run(storage, "other", enabled=False).enabled


def test_s3_storage_uploads_event_files_on_close(s3_config: StorageConfig, tmp_path: Path) -> None:
    storage = open_storage(s3_config)
    tracker = Tracker.for_run(storage, "pretrain-s3", enabled=True)
    assert tracker.log_dir is not None and not tracker.log_dir.is_relative_to(tmp_path)
    tracker.log(7, {"loss": 1.25})
    tracker.close()
    keys = storage.list("tensorboard/pretrain-s3")
    assert len(keys) == 1 and keys[0].startswith("tensorboard/pretrain-s3/events.out.tfevents.")
    back = tmp_path / "back"
    storage.download_file(keys[0], back / Path(keys[0]).name)
    assert _scalars(back) == {"loss": [(7, 1.25)]}
    # upload_dir keeps relative paths
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "f.txt").write_text("x")
    assert upload_dir(storage, tmp_path / "d", "tb/extra") == ["tb/extra/sub/f.txt"]
    assert storage.read_bytes("tb/extra/sub/f.txt") == b"x"
