"""Training options: sampling temperature, gradient accumulation, activation checkpointing,
rsLoRA, MFU accounting, and NaN/inf losses."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import TINY, domain_tokens, random_model, run_trainer, write_config, write_shard
from moa_trainer.lora import LoraSpec, StackedLoRA, parse_spec
from moa_trainer.mfu import flops_per_token, matmul_params, peak_flops
from moa_trainer.protocol import StopFlag
from moa_trainer.safetensors_io import load_file
from moa_trainer.sampling import domain_counts
from moa_trainer.train import run
from conftest import DOMAINS, TARGETS, make_config


def test_domain_counts_follow_the_temperature() -> None:
    sizes = [1000, 4000, 16000]
    assert domain_counts(sizes, 4, 1.0) == [4, 4, 4]  # equal share per expert
    mid = domain_counts(sizes, 4, 2.0)  # ∝ √n: 1 : 2 : 4
    assert sum(mid) == 12 and mid[0] < mid[1] < mid[2]
    far = domain_counts(sizes, 20, 1e9)  # ~ proportional to size
    assert sum(far) == 60 and far == [3, 11, 46]
    assert min(domain_counts([1, 10**9], 1, 1e9)) == 1  # every expert keeps a window


def run_inproc(cfg: dict[str, Any], tmp: Path, name: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    run(write_config(tmp / f"{name}.json", cfg), StopFlag())
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_temperature_shapes_the_batch(tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = make_config(tmp_path, tiny_model_dir, steps=1, eval_every=0, sampling_temperature=1e6, batch_size=3)
    write_shard(Path(cfg["domains"][0]["train"]), domain_tokens(0, 6000, 10, 60))  # python 2× the others
    events = run_inproc(cfg, tmp_path, "t", capsys)
    plan = next(e for e in events if e["type"] == "plan")
    assert plan["domain_batch"] == {"python": 5, "sql": 2, "docs": 2}
    assert plan["tokens"] == 9 * 16


def test_grad_accum_equals_the_larger_batch(tmp_path: Path, tiny_model_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    one = make_config(tmp_path / "one", tiny_model_dir, steps=3, eval_every=0, batch_size=2)
    two = make_config(tmp_path / "two", tiny_model_dir, steps=3, eval_every=0, batch_size=1, grad_accum=2)
    e1 = run_inproc(one, tmp_path, "one", capsys)
    e2 = run_inproc(two, tmp_path, "two", capsys)
    s1 = [e["loss"] for e in e1 if e["type"] == "step"]
    s2 = [e["loss"] for e in e2 if e["type"] == "step"]
    assert s1 == pytest.approx(s2, rel=1e-5)
    assert next(e for e in e2 if e["type"] == "plan")["tokens"] == 3 * 3 * 2 * 16
    a = load_file(Path(one["experts_dir"]) / "sql" / "adapter_model.safetensors")
    b = load_file(Path(two["experts_dir"]) / "sql" / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def frozen_model_lora_and_ids() -> tuple[Any, StackedLoRA, torch.Tensor]:
    """A frozen random model, a 2-expert LoRA with non-zero (seeded) weights, and a batch of ids."""
    model = random_model().requires_grad_(False)
    lora = StackedLoRA(TINY, LoraSpec(r=4, alpha=8.0, target_modules=tuple(TARGETS)), 2)
    with torch.no_grad():
        for p in lora.parameters():
            p.normal_(0, 0.2, generator=torch.Generator().manual_seed(3))
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    return model, lora, ids


def test_activation_checkpointing_keeps_the_gradients() -> None:
    model, lora, ids = frozen_model_lora_and_ids()
    grads = []
    for flag in (False, True):
        model.activation_checkpointing = flag
        lora.zero_grad()
        logits = model(ids, adapter=lora.adapter(index=torch.tensor([0, 1]))).logits
        logits.logsumexp(-1).mean().backward()
        grads.append([p.grad.clone() for p in lora.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_rslora_scaling_and_adapter_config(tmp_path: Path, tiny_model_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    spec = parse_spec({"r": 16, "alpha": 8, "use_rslora": True}, "test")
    assert spec.scaling == pytest.approx(8 / math.sqrt(16))
    assert parse_spec({"r": 16, "alpha": 8}, "test").scaling == 0.5
    cfg = make_config(tmp_path, tiny_model_dir, steps=2, eval_every=0,
                      lora={"r": 4, "alpha": 8, "use_rslora": True, "target_modules": TARGETS})
    run_inproc(cfg, tmp_path, "rs", capsys)
    folder = Path(cfg["experts_dir"]) / "python"
    assert json.loads((folder / "adapter_config.json").read_text())["use_rslora"] is True
    transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")
    peft = pytest.importorskip("peft", reason="peft not installed (test dependency)")
    from moa_trainer.experts_io import load_into_slot
    from moa_trainer.hf_folder import load_base_model

    hf = transformers.LlamaForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    theirs_model = peft.PeftModel.from_pretrained(hf, str(folder)).eval()
    ours = load_base_model(tiny_model_dir)
    lora = StackedLoRA(ours.config, LoraSpec(r=4, alpha=8.0, target_modules=tuple(TARGETS), use_rslora=True), 1)
    load_into_slot(lora, 0, folder, "test")
    with torch.no_grad():  # make the delta large enough that the wrong scaling would show
        for p in lora.parameters():
            p.mul_(30)
        for name, p in theirs_model.named_parameters():
            if "lora_" in name:
                p.mul_(30)
    ids = torch.randint(10, 60, (2, 10), generator=torch.Generator().manual_seed(0))
    lora.eval()
    with torch.no_grad():
        mine = ours(ids, adapter=lora.adapter(index=torch.zeros(2, dtype=torch.long))).logits
        theirs = theirs_model(input_ids=ids).logits
        base = ours(ids).logits
    assert (mine - theirs).abs().max().item() < 1e-4 and (mine - base).abs().max().item() > 1e-2


def test_mfu_accounting() -> None:
    model = random_model()
    n = matmul_params(model)
    c = TINY
    assert n == sum(p.numel() for k, p in model.named_parameters() if k.endswith("proj.weight")) + 258 * 32
    assert flops_per_token(model, 100, 16) == 4 * n + 600 + 12 * c.num_hidden_layers * 4 * 8 * 16
    assert peak_flops("NVIDIA H200", None) == 989e12 and peak_flops("NVIDIA A100-SXM4-80GB", None) == 312e12
    assert peak_flops("Mystery GPU", None) is None and peak_flops("Mystery GPU", 100.0) == 100e12


def test_nan_loss_ends_in_an_error_naming_the_domain(tmp_path: Path, tiny_model_dir: Path) -> None:
    # A huge learning rate blows the weights up after the first updates: the loss turns inf/NaN.
    cfg = make_config(tmp_path, tiny_model_dir, steps=50, eval_every=0, checkpoint_every=1, lr=1e30,
                      warmup_steps=0)
    rc, events, stdout, _ = run_trainer(["train", "--config", write_config(tmp_path / "nan.json", cfg)])
    assert rc == 1 and events[-1]["type"] == "error", events[-3:]
    err = events[-1]
    assert "not finite" in err["message"] and "domain" in err["message"] and "stage experts" in err["message"]
    assert any(f"'{n}'" in err["message"] for n in DOMAINS)
    ckpts = [e for e in events if e["type"] == "checkpoint"]
    assert ckpts and Path(ckpts[-1]["path"]).is_file() and ckpts[-1]["path"] in err["hint"]
    assert not Path(cfg["experts_dir"]).exists()  # nothing written from a diverged run
    assert not list(Path(cfg["run_dir"]).rglob("*.tmp"))
    assert "Traceback" not in stdout


def test_bf16_precision_holds_the_base_in_bf16_and_trains_fp32_experts(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # CPU autocast runs the same code path the CUDA default (precision "auto") takes.
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = make_config(tmp_path / precision, tiny_model_dir, steps=2, eval_every=0, precision=precision)
        runs[precision] = (cfg, run_inproc(cfg, tmp_path, precision, capsys))
    first = {p: [e["loss"] for e in ev if e["type"] == "step" and e["step"] == 1] for p, (_, ev) in runs.items()}
    assert first["bf16"] == pytest.approx(first["fp32"], rel=0.02)
    assert first["bf16"] != first["fp32"]  # it really ran in bf16
    tensors = load_file(Path(runs["bf16"][0]["experts_dir"]) / "sql" / "adapter_model.safetensors")
    assert all(t.dtype == torch.float32 for t in tensors.values())
    from moa_trainer.runtime import base_dtype

    assert base_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    assert base_dtype(torch.device("cuda"), "auto") == torch.bfloat16
    assert base_dtype(torch.device("cpu"), "auto") == torch.float32


def test_compiled_layers_compute_the_same() -> None:
    # The "eager" backend runs dynamo's graph capture without a C++ toolchain; "inductor"
    # (the default) adds code generation, which takes minutes on this CPU (bench/RESULTS.md).
    from moa_trainer.train import compile_layers

    model, lora, ids = frozen_model_lora_and_ids()
    outs = []
    for compiled in (False, True):
        if compiled:
            assert compile_layers(model, backend="eager")
        lora.zero_grad()
        logits = model(ids, adapter=lora.adapter(groups=[1, 1])).logits
        logits.logsumexp(-1).mean().backward()
        outs.append((logits.detach(), [p.grad.clone() for p in lora.parameters()]))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(outs[0][1], outs[1][1]))
    torch._dynamo.reset()


def test_out_of_memory_names_the_stage_and_keeps_the_checkpoint(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A CUDA OOM cannot be provoked on a CPU box; the allocator's exception is raised from the
    # step instead, after real steps and a real checkpoint.
    from moa_trainer.errors import TrainerError
    from moa_trainer.stages import LoraStage
    from moa_trainer.train import OUT_OF_MEMORY

    real_step = LoraStage.step

    def step(self: LoraStage, n: int) -> Any:
        if n == 3:
            raise OUT_OF_MEMORY("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self, n)

    monkeypatch.setattr(LoraStage, "step", step)
    cfg = make_config(tmp_path, tiny_model_dir, steps=6, eval_every=0, checkpoint_every=2)
    with pytest.raises(TrainerError) as info:
        run(write_config(tmp_path / "oom.json", cfg), StopFlag())
    capsys.readouterr()
    assert "stage experts, step 3: out of memory" in info.value.message
    ckpt = Path(cfg["run_dir"]) / "checkpoints" / "step-000002.safetensors"
    assert ckpt.is_file() and str(ckpt) in (info.value.hint or "")
    assert not Path(cfg["experts_dir"]).exists()


def test_bad_inputs_name_the_file_or_domain(tmp_path: Path, tiny_model_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from moa_trainer.errors import TrainerError

    def fails(cfg: dict[str, Any], name: str) -> TrainerError:
        with pytest.raises(TrainerError) as info:
            run(write_config(tmp_path / f"{name}.json", cfg), StopFlag())
        capsys.readouterr()
        return info.value

    cfg = make_config(tmp_path / "empty", tiny_model_dir, steps=1)
    write_shard(Path(cfg["domains"][1]["train"]), domain_tokens(0, 0, 0, 1))
    err = fails(cfg, "empty")
    assert "'sql'" in err.message and "is empty" in err.message and err.hint

    cfg = make_config(tmp_path / "vocab", tiny_model_dir, steps=1)
    write_shard(Path(cfg["domains"][2]["train"]), domain_tokens(0, 500, 9000, 9001))
    err = fails(cfg, "vocab")
    assert "'docs'" in err.message and "outside the model's vocabulary" in err.message

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    raw = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**raw, "model_type": "gpt_neox"}))
    err = fails(make_config(tmp_path / "arch", model, steps=1), "arch")
    assert "model_type 'gpt_neox'" in err.message and str(model / "config.json") in err.message

    (model / "config.json").write_text(json.dumps(raw))
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes()[:5000])
    err = fails(make_config(tmp_path / "cut", model, steps=1), "cut")
    assert "model.safetensors" in err.message and "truncated" in (err.hint or "")
    assert not (tmp_path / "cut" / "experts").exists()
