"""What a hostile or broken input, a stop at the wrong moment, or a dead parent does to the trainer:
a clear refusal before anything is allocated, a prompt stop, nothing half-written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY, make_config, run_trainer, trainer_env, write_config
from moa_trainer.errors import TrainerError
from moa_trainer.fsutil import previous_path, publish_dir, recover_dir, temp_name
from moa_trainer.hf_folder import load_base_model
from moa_trainer.model import CausalLM, ModelConfig
from moa_trainer.protocol import StopFlag, StopRequested, install_stop_handlers
from moa_trainer.safetensors_io import read_header


def hf_config(**over: object) -> dict[str, object]:
    d = TINY.to_hf()
    d.update(over)
    return d


@pytest.mark.parametrize("key,value", [("num_hidden_layers", 10**9), ("hidden_size", 2**40), ("vocab_size", 0),
                                       ("intermediate_size", -4), ("head_dim", 10**6)])
def test_a_config_out_of_bounds_is_refused_before_anything_is_built(key: str, value: int) -> None:
    t0 = time.perf_counter()
    with pytest.raises(TrainerError, match=f"config.json: {key} {value} is outside the supported range"):
        ModelConfig.from_hf(hf_config(**{key: value}), "/m/config.json")
    assert time.perf_counter() - t0 < 1.0


def test_a_config_that_does_not_match_its_weights_is_refused_from_the_headers(tmp_path: Path,
                                                                               tiny_model_dir: Path) -> None:
    folder = tmp_path / "lying"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(tiny_model_dir / "model.safetensors")
    # 512 layers is within bounds, but these weights have 2: refused from the headers, not by building.
    (folder / "config.json").write_text(json.dumps(hf_config(num_hidden_layers=512)))
    t0 = time.perf_counter()
    with pytest.raises(TrainerError, match="config.json says 512 layers, the weights hold 2"):
        load_base_model(folder)
    assert time.perf_counter() - t0 < 2.0
    (folder / "config.json").write_text(json.dumps(hf_config(intermediate_size=TINY.intermediate_size * 2)))
    with pytest.raises(TrainerError, match=r"mlp.gate_proj.weight has shape \[64, 32\], config.json implies \[128, 32\]"):
        load_base_model(folder)


@pytest.mark.parametrize("over", [{}, {"model_type": "qwen2"}, {"model_type": "mistral", "tie_word_embeddings": False},
                                  {"attention_bias": True, "mlp_bias": True}])
def test_weight_shapes_from_the_config_are_the_model_s_own(over: dict[str, object]) -> None:
    cfg = ModelConfig.from_hf(hf_config(**over), "config.json")
    with torch.device("meta"):
        model = CausalLM(cfg)
    assert cfg.weight_shapes() == {k: tuple(v.shape) for k, v in model.hf_state_dict().items()}


def test_safetensors_with_overlapping_or_gapped_tensors_are_refused(tmp_path: Path) -> None:
    def write(offsets: list[tuple[int, int]], data_len: int) -> Path:
        header = {f"t{i}": {"dtype": "F32", "shape": [(e - b) // 4], "data_offsets": [b, e]}
                  for i, (b, e) in enumerate(offsets)}
        raw = json.dumps(header).encode()
        path = tmp_path / f"f{len(list(tmp_path.iterdir()))}.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data_len))
        return path

    read_header(write([(0, 8), (8, 16)], 16))
    with pytest.raises(TrainerError, match="tensors overlap or leave a gap"):
        read_header(write([(0, 8), (4, 12)], 12))
    with pytest.raises(TrainerError, match="tensors overlap or leave a gap"):
        read_header(write([(0, 8), (12, 16)], 16))
    with pytest.raises(TrainerError, match="cover 8 bytes but the data section holds 16"):
        read_header(write([(0, 8)], 16))
    with pytest.raises(TrainerError, match="not a regular file"):
        read_header(Path("/dev/zero"))


def test_publish_dir_swaps_a_folder_whole_and_recovery_finishes_a_killed_publish(tmp_path: Path) -> None:
    target = tmp_path / "experts" / "python"

    def fill(version: str):
        def write(folder: Path) -> None:
            (folder / "a").write_text(version)
            (folder / "b").write_text(version)
        return write

    publish_dir(target, fill("1"))
    publish_dir(target, fill("2"))
    assert (target / "a").read_text() == "2" and (previous_path(target) / "b").read_text() == "1"
    # A kill between the two renames: the new version sits complete under a dead pid's staging name.
    staging = temp_name(target).with_name(f".python.tmp-{2**22 + 7}-0123abcd")
    staging.mkdir()
    fill("3")(staging)
    shutil.rmtree(previous_path(target))
    os.replace(target, previous_path(target))
    recover_dir(target)
    assert (target / "a").read_text() == "3"
    # A folder the user deleted (no staging folder) stays deleted.
    shutil.rmtree(target)
    recover_dir(target)
    assert not target.exists()
    # A failure while filling leaves the published version and no staging folder.
    publish_dir(target, fill("4"))
    with pytest.raises(RuntimeError):
        publish_dir(target, lambda f: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert (target / "a").read_text() == "4"
    assert [p.name for p in target.parent.iterdir() if ".tmp-" in p.name] == []


def test_a_stop_before_the_training_loop_interrupts_loading_at_once() -> None:
    flag = StopFlag()
    install_stop_handlers(flag, stdin=None, watch_parent_s=0)
    try:
        t0 = time.perf_counter()
        with pytest.raises(StopRequested):
            os.kill(os.getpid(), signal.SIGTERM)
            while time.perf_counter() - t0 < 10:  # stands for building a large model
                sum(range(1000))
        assert time.perf_counter() - t0 < 2
        assert flag.is_set() and flag.reason == "SIGTERM"
        flag.begin_loop()
        os.kill(os.getpid(), signal.SIGTERM)  # in the loop a stop is polled, not raised
        assert flag.is_set()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def test_stop_on_stdin_while_loading_ends_the_run_stopped_with_nothing_written(tmp_path: Path,
                                                                                tiny_model_dir: Path) -> None:
    cfg = make_config(tmp_path, tiny_model_dir)
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp_path / "t.json", cfg)],
                                        input_text='{"cmd":"stop"}\n')
    assert rc == 0, stderr
    done = events[-1]
    assert done["type"] == "done" and done["stopped"] is True and done["steps_done"] == 0
    assert not (tmp_path / "experts").exists()


def test_an_orphaned_trainer_stops_by_itself_with_a_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=100000, eval_every=0)
    config = write_config(tmp_path / "t.json", cfg)
    pid_file = tmp_path / "trainer.pid"
    # A parent that starts the trainer, waits for its first step, then dies without a word: both of
    # the trainer's output pipes lose their reader (printing to stderr must not kill the stop).
    parent = subprocess.run([sys.executable, "-c", f"""
import subprocess, sys
p = subprocess.Popen([sys.executable, "-m", "moa_trainer", "train", "--config", {config!r}],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
open({str(pid_file)!r}, "w").write(str(p.pid))
for line in p.stdout:
    if b'"type":"step"' in line:
        break
"""], env=trainer_env(), timeout=120)
    assert parent.returncode == 0
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        # Reap it if it is ours to reap (it is not: its parent is gone), else keep waiting.
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the orphaned trainer kept running")
    checkpoints = list((Path(cfg["run_dir"]) / "checkpoints").glob("step-*.safetensors"))
    assert checkpoints, "it checkpointed before it stopped"
    assert not (tmp_path / "experts").exists(), "and published nothing"


def test_the_bounds_leave_real_models_alone() -> None:
    qwen = hf_config(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                     num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, head_dim=64,
                     max_position_embeddings=32768)
    cfg = ModelConfig.from_hf(qwen, "config.json")
    # Tied embeddings; per layer two norms, seven projections, and Qwen2's q/k/v biases.
    assert len(cfg.weight_shapes()) == 2 + 24 * (2 + 7 + 3)
