"""`merge` against peft's own `add_weighted_adapter` on random adapters (trainer/moa_trainer/merge.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import run_trainer, write_config
from moa_trainer.errors import TrainerError
from moa_trainer.merge import merge_experts
from moa_trainer.safetensors_io import load_file

transformers = pytest.importorskip("transformers", reason="transformers not installed (test dependency)")
peft = pytest.importorskip("peft", reason="peft not installed (test dependency)")

# Three experts of one rank, on overlapping module sets (a module only some target merges from those).
SAME = {"py": (4, 8, ["q_proj", "v_proj", "gate_proj"]), "js": (4, 4, ["q_proj", "v_proj", "o_proj"]),
        "sql": (4, 16, ["q_proj", "down_proj"])}
MIXED_RANKS = {"py": (4, 8, ["q_proj", "v_proj"]), "md": (2, 2, ["q_proj", "o_proj"])}


def write_adapters(model_dir: Path, root: Path, specs: dict[str, tuple[int, int, list[str]]]) -> Any:
    """Random PEFT adapters saved by peft, and one PeftModel holding all of them."""
    hf = transformers.LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model = None
    for i, (name, (r, alpha, targets)) in enumerate(specs.items()):
        cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, task_type="CAUSAL_LM")
        if model is None:
            model = peft.get_peft_model(hf, cfg, adapter_name=name)
        else:
            model.add_adapter(name, cfg)
        g = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if f".{name}." in pname:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    assert model is not None
    model.save_pretrained(str(root))  # each adapter in root/<name>
    return model


def peft_merged(model: Any, names: list[str], weights: list[float], method: str, seed: int,
                monkeypatch: pytest.MonkeyPatch, **kw: Any) -> dict[str, torch.Tensor]:
    """peft's merge as (layer, module) → (A, B), with torch's generator seeded where its merging
    starts (after it initialises the new adapter, which draws from the same generator)."""
    lora_model = type(model.base_model)
    inject = lora_model.inject_adapter

    def seeded(self: Any, *a: Any, **k: Any) -> Any:
        out = inject(self, *a, **k)
        torch.manual_seed(seed)
        return out

    monkeypatch.setattr(lora_model, "inject_adapter", seeded)
    tag = f"m_{method}_{seed}"
    model.add_weighted_adapter(names, weights, tag, combination_type=method, **kw)
    monkeypatch.setattr(lora_model, "inject_adapter", inject)
    out = {}
    for k, v in model.state_dict().items():
        if f".{tag}." in k:
            out[k.replace(f".{tag}.", ".")] = v.detach().clone()
    model.delete_adapter(tag)
    return out


@pytest.mark.parametrize("method", ["linear", "cat", "svd", "magnitude_prune", "ties", "dare_linear", "dare_ties",
                                    "ties_svd", "dare_ties_svd"])
def test_every_method_merges_as_peft_does(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                          method: str) -> None:
    model = write_adapters(tiny_model_dir, tmp_path / "adapters", SAME)
    names, weights = list(SAME), [0.7, -0.4, 1.3]
    kw: dict[str, Any] = {"density": 0.5} if method not in ("linear", "cat", "svd") else {}
    ref = peft_merged(model, names, weights, method, 11, monkeypatch, **kw)
    ours, spec = merge_experts([tmp_path / "adapters" / n for n in names], names, weights, method,
                               density=kw.get("density"), seed=11)
    assert set(ours) == set(ref) and ref
    assert spec.alpha == spec.r and spec.r == (12 if method == "cat" else 4)
    assert set(spec.target_modules) == {m for _, _, t in SAME.values() for m in t}
    for k in [k for k in ref if ".lora_A." in k]:
        kb = k.replace(".lora_A.", ".lora_B.")
        if method.endswith("svd"):  # singular vectors are defined up to sign: compare ΔW
            assert torch.allclose(ours[kb] @ ours[k], ref[kb] @ ref[k], atol=1e-5), k
        else:
            assert torch.allclose(ours[k], ref[k], atol=1e-5) and torch.allclose(ours[kb], ref[kb], atol=1e-5), k


def test_cat_and_svd_merge_experts_of_different_ranks_and_cat_is_exact(tmp_path: Path, tiny_model_dir: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_adapters(tiny_model_dir, tmp_path / "ad", MIXED_RANKS)
    folders = [tmp_path / "ad" / "py", tmp_path / "ad" / "md"]
    tensors = [load_file(f / "adapter_model.safetensors") for f in folders]
    scalings = [8 / 4, 2 / 2]
    cat, spec = merge_experts(folders, ["py", "md"], [0.5, 2.0], "cat")
    assert spec.r == 6
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_{}.weight"
    want = sum(w * s * (t[key.format("B")] @ t[key.format("A")]) for w, s, t in zip([0.5, 2.0], scalings, tensors))
    assert torch.allclose(cat[key.format("B")] @ cat[key.format("A")], want, atol=1e-5)
    svd, spec = merge_experts(folders, ["py", "md"], [0.5, 2.0], "svd", svd_rank=6)
    assert spec.r == 6 and torch.allclose(svd[key.format("B")] @ svd[key.format("A")], want, atol=1e-4)
    with pytest.raises(TrainerError, match="one rank.*py r=4, md r=2"):
        merge_experts(folders, ["py", "md"], [1.0, 1.0], "linear")
    with pytest.raises(TrainerError, match="needs a density"):
        merge_experts(folders, ["py", "md"], [1.0, 1.0], "ties")


def test_the_merge_command_publishes_a_peft_folder_peft_loads(tmp_path: Path, tiny_model_dir: Path) -> None:
    write_adapters(tiny_model_dir, tmp_path / "ad", SAME)
    out = tmp_path / "experts" / "both"
    cfg = {"v": 1, "name": "both", "out_dir": str(out), "method": "ties", "density": 0.6, "weights": [1.0, 0.5],
           "experts": [{"name": "py", "dir": str(tmp_path / "ad" / "py")}, {"name": "js", "dir": str(tmp_path / "ad" / "js")}],
           "base_model_name": "tiny"}
    rc, events, _, stderr = run_trainer(["merge", "--config", write_config(tmp_path / "m.json", cfg)])
    assert rc == 0, stderr
    assert [e["type"] for e in events][-2:] == ["artifact", "done"] and events[-2]["kind"] == "expert"
    hf = transformers.LlamaForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    loaded = peft.PeftModel.from_pretrained(hf, str(out))
    assert loaded.peft_config["default"].r == 4 and loaded.peft_config["default"].lora_alpha == 4
    cfg["weights"] = [1.0]
    rc, events, _, _ = run_trainer(["merge", "--config", write_config(tmp_path / "m.json", cfg)])
    assert rc == 1 and "2 experts but 1 weights" in events[-1]["message"]
