from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import DOMAINS, TARGETS, domain_tokens, make_config, parse_events, run_trainer, trainer_env, write_config, write_shard
from moa_trainer.hf_folder import load_base_model
from moa_trainer.lora import LoraSpec, StackedLoRA
from moa_trainer.model import MODULE_PARENT
from moa_trainer.safetensors_io import load_file

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = make_config(tmp, tiny_model_dir)
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp / "train.json", cfg)])
    assert rc == 0, stderr
    return {"cfg": cfg, "events": events, "tmp": tmp}


def test_event_stream(trained: dict[str, Any]) -> None:
    events = trained["events"]
    types = [e["type"] for e in events]
    assert types[0] == "hello" and types[1] == "plan" and types[-1] == "done"
    assert all(e["v"] == 1 for e in events)
    hello = events[0]
    assert hello["device"] == "cpu" and hello["threads"] == 1 and hello["protocol"] == 1
    plan = events[1]
    assert plan["experts"] == list(DOMAINS) and plan["steps"] == 6
    assert plan["tokens"] == 6 * 3 * 2 * 16 and plan["params_trainable"] > 0 and plan["params_base"] > 0
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == 6 * 3
    assert [(e["step"], e["expert"]) for e in steps[:3]] == [(1, "python"), (1, "sql"), (1, "docs")]
    for e in steps:
        assert e["stage"] == "experts" and e["steps"] == 6
        assert e["loss"] > 0 and e["lr"] > 0 and e["tokens_per_s"] > 0 and e["elapsed_s"] >= 0
    evals = [(e["step"], e["expert"]) for e in events if e["type"] == "eval"]
    assert evals == [(3, "python"), (3, "sql"), (6, "python"), (6, "sql")]
    ckpt = next(e for e in events if e["type"] == "checkpoint")
    assert ckpt["step"] == 6 and Path(ckpt["path"]).is_file()
    assert Path(ckpt["path"]).parent == Path(trained["cfg"]["run_dir"]) / "checkpoints"
    arts = [e for e in events if e["type"] == "artifact"]
    assert [(a["kind"], a["name"]) for a in arts] == [("expert", n) for n in DOMAINS]
    done = events[-1]
    assert done["stopped"] is False and done["steps_done"] == 6 and done["experts"] == list(DOMAINS)
    assert done["val_loss"]["docs"] is None and done["val_loss"]["python"] > 0
    # Each expert learns its own domain: held-out loss (fixed windows) falls between evals.
    val = {(e["step"], e["expert"]): e["loss"] for e in events if e["type"] == "eval"}
    assert val[(6, "python")] < val[(3, "python")] and val[(6, "sql")] < val[(3, "sql")]


def test_expert_files_follow_peft_layout(trained: dict[str, Any], tiny_model_dir: Path) -> None:
    cfg = trained["cfg"]
    model = load_base_model(tiny_model_dir)
    mc = model.config
    dims = mc.module_dims()
    for name in DOMAINS:
        folder = Path(cfg["experts_dir"]) / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "adapter_config.json", "adapter_model.safetensors", "expert.json"]
        tensors = load_file(folder / "adapter_model.safetensors")
        expected = set()
        for i in range(mc.num_hidden_layers):
            for m in TARGETS:
                prefix = f"base_model.model.model.layers.{i}.{MODULE_PARENT[m]}.{m}"
                a, b = tensors[f"{prefix}.lora_A.weight"], tensors[f"{prefix}.lora_B.weight"]
                assert a.dtype == torch.float32 and list(a.shape) == [4, dims[m][0]]
                assert list(b.shape) == [dims[m][1], 4]
                expected |= {f"{prefix}.lora_A.weight", f"{prefix}.lora_B.weight"}
        assert set(tensors) == expected
        assert any(torch.count_nonzero(t) for k, t in tensors.items() if "lora_B" in k)
        ac = json.loads((folder / "adapter_config.json").read_text())
        assert ac["peft_type"] == "LORA" and ac["task_type"] == "CAUSAL_LM" and ac["r"] == 4
        assert ac["lora_alpha"] == 8 and ac["target_modules"] == TARGETS and ac["bias"] == "none"
        assert ac["use_rslora"] is False and ac["fan_in_fan_out"] is False
        assert ac["base_model_name_or_path"] == "builtin:test-tiny"
        ej = json.loads((folder / "expert.json").read_text())
        assert ej["v"] == 1 and ej["domain"] == name and ej["run_id"] == "run-1" and ej["steps"] == 6
        assert ej["fingerprint"] == f"fp-{name}" and ej["train_loss"] > 0 and ej["created"]
        assert (ej["val_loss"] is None) == (name == "docs")


def test_checkpoint_holds_stacked_lora(trained: dict[str, Any]) -> None:
    ckpt = Path(next(e for e in trained["events"] if e["type"] == "checkpoint")["path"])
    tensors = load_file(ckpt)
    a = tensors["lora.layers.0.q_proj.A"]
    assert list(a.shape) == [3, 4, 32]
    assert any(k.startswith("optim.") for k in tensors)


def test_peft_loads_expert_with_identical_logits(trained: dict[str, Any], tiny_model_dir: Path) -> None:
    transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")
    peft = pytest.importorskip("peft", reason="peft not installed (test dependency)")
    folder = Path(trained["cfg"]["experts_dir"]) / "sql"
    hf = transformers.LlamaForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    peft_model = peft.PeftModel.from_pretrained(hf, str(folder)).eval()
    ours = load_base_model(tiny_model_dir)
    lora = StackedLoRA(ours.config, LoraSpec(r=4, alpha=8.0, target_modules=tuple(TARGETS)), 1)
    lora.load_peft_state_dict(0, load_file(folder / "adapter_model.safetensors"), str(folder))
    lora.eval()
    ids = torch.randint(100, 150, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = peft_model(input_ids=ids).logits
        mine = ours(ids, adapter=lora.adapter(index=torch.zeros(2, dtype=torch.long))).logits
        base = ours(ids).logits
    assert (mine - theirs).abs().max().item() < 1e-4
    assert (mine - base).abs().max().item() > 1e-3


def test_same_seed_same_experts(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from moa_trainer.protocol import StopFlag
    from moa_trainer.train import run

    outputs = []
    for attempt in ("a", "b"):
        cfg = make_config(tmp_path / attempt, tiny_model_dir, steps=2, eval_every=0)
        run(write_config(tmp_path / f"{attempt}.json", cfg), StopFlag())
        outputs.append(load_file(Path(cfg["experts_dir"]) / "python" / "adapter_model.safetensors"))
    capsys.readouterr()
    assert outputs[0].keys() == outputs[1].keys()
    assert all(torch.equal(outputs[0][k], outputs[1][k]) for k in outputs[0])


def start_long_run(tmp: Path, model_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    cfg = make_config(tmp, model_dir, steps=100000, eval_every=0)
    path = write_config(tmp / "train.json", cfg)
    proc = subprocess.Popen([sys.executable, "-m", "moa_trainer", "train", "--config", path],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=trainer_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if '"type":"step"' in line:
            return proc, cfg
    proc.kill()
    raise AssertionError(f"no step event; stderr: {proc.stderr.read() if proc.stderr else ''}")


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]]]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, parse_events(out)


@pytest.mark.parametrize("how", ["stdin", "sigterm"])
def test_graceful_stop(tmp_path: Path, tiny_model_dir: Path, how: str) -> None:
    proc, cfg = start_long_run(tmp_path, tiny_model_dir)
    if how == "stdin":
        assert proc.stdin is not None
        proc.stdin.write('{"cmd":"stop"}\n')
        proc.stdin.flush()
    else:
        proc.send_signal(signal.SIGTERM)
    rc, events = finish(proc)
    assert rc == 0
    done = events[-1]
    assert done["type"] == "done" and done["stopped"] is True
    assert 1 <= done["steps_done"] < 100000
    # A stop checkpoints and publishes nothing: the experts a stopped run would replace stay.
    assert [e["type"] for e in events if e["type"] in ("checkpoint", "artifact")] == ["checkpoint"]
    assert done["kept_previous"] == ["experts"] and done["experts"] == []
    assert not (Path(cfg["experts_dir"]) / "python").exists()

    # Asked for, the checkpoint's experts are published without training further.
    cfg["finish_now"] = True
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp_path / "train.json", cfg),
                                         "--resume"])
    assert rc == 0, stderr
    assert [e["name"] for e in events if e["type"] == "artifact"] == [d["name"] for d in cfg["domains"]]
    assert not any(e["type"] == "step" for e in events)
    ej = json.loads((Path(cfg["experts_dir"]) / "python" / "expert.json").read_text())
    assert ej["steps"] == done["steps_done"]


def test_keep_partial_publishes_a_stopped_stage(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=100000, eval_every=0)
    cfg["keep_partial"] = True
    proc = subprocess.Popen([sys.executable, "-m", "moa_trainer", "train", "--config",
                             write_config(tmp_path / "train.json", cfg)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=trainer_env())
    assert proc.stdout is not None and proc.stdin is not None
    while '"type":"step"' not in proc.stdout.readline():
        pass
    proc.stdin.write('{"cmd":"stop"}\n')
    proc.stdin.flush()
    rc, events = finish(proc)
    assert rc == 0 and events[-1]["stopped"] is True and events[-1]["kept_previous"] == []
    assert [e["type"] for e in events if e["type"] in ("checkpoint", "artifact")] == \
        ["checkpoint"] + ["artifact"] * len(DOMAINS)


def test_errors_name_the_domain(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = make_config(tmp_path, tiny_model_dir)
    write_shard(Path(cfg["domains"][1]["train"]), domain_tokens(0, 10, 100, 150))
    rc, events, stdout, _ = run_trainer(["train", "--config", write_config(tmp_path / "short.json", cfg)])
    assert rc == 1 and events[-1]["type"] == "error"
    assert "'sql'" in events[-1]["message"] and "seq_len + 1" in events[-1]["message"]
    assert "Traceback" not in stdout

    cfg = make_config(tmp_path, tiny_model_dir)
    cfg["domains"][2]["train"] = str(tmp_path / "missing.bin")
    rc, events, _, _ = run_trainer(["train", "--config", write_config(tmp_path / "missing.json", cfg)])
    assert rc == 1 and "'docs'" in events[-1]["message"] and "not found" in events[-1]["message"]
    assert events[-1]["hint"]


def test_cli_failures_end_in_error_events(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    rc, events, _, _ = run_trainer(["train", "--config", str(bad)])
    assert rc == 1 and events[-1]["type"] == "error" and "bad.json" in events[-1]["message"]
    rc, events, _, _ = run_trainer(["train"])
    assert rc == 2 and events[-1]["type"] == "error" and events[-1]["hint"]
    rc, events, _, _ = run_trainer(["doctor"])
    assert rc == 0 and [e["type"] for e in events] == ["hello", "done"]
    assert {"python", "torch", "device", "gpu", "gpu_memory_gb", "threads"} <= set(events[0])


def test_missing_torch_gives_install_hint() -> None:
    code = ("import sys; sys.modules['torch'] = None; from moa_trainer.cli import main; "
            "sys.exit(main(['doctor']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=trainer_env(),
                          timeout=60)
    events = parse_events(proc.stdout)
    assert proc.returncode == 1 and events[-1]["type"] == "error"
    assert "moa setup" in events[-1]["hint"] and "pip install -r trainer/requirements.txt" in events[-1]["hint"]
