from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import TINY, random_model, run_trainer, train_inproc, write_config
from moa_trainer.errors import TrainerError
from moa_trainer.lora import LoraSpec, StackedLoRA
from moa_trainer.ngram_router import HASH
from moa_trainer.router import RoutedAdapter, Routers, decision, load_router, masked_mean, top_k_weights
from moa_trainer.safetensors_io import load_file
from conftest import DOMAINS, TARGETS, make_config


def test_top_k_renormalises() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    w1 = top_k_weights(logits, 1)
    assert torch.equal(w1, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    w2 = top_k_weights(logits, 2)
    p = logits.softmax(-1)[0]
    assert torch.allclose(w2[0, :2], p[:2] / p[:2].sum()) and w2[0, 2:].abs().sum() == 0
    assert torch.allclose(top_k_weights(logits, 9), logits.softmax(-1))


def test_masked_mean_ignores_positions_outside_the_prompt() -> None:
    h = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0]])
    assert torch.equal(masked_mean(h, mask), h[:, :2].mean(1))


def test_decision_is_made_on_the_prompt_and_held() -> None:
    """Cached decoding with the held decision equals a full pass whose routers saw only the prompt."""
    model = random_model()
    lora = StackedLoRA(TINY, LoraSpec(r=4, alpha=8.0, target_modules=tuple(TARGETS)), 3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in lora.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    torch.manual_seed(0)
    routers = Routers(TINY.num_hidden_layers, TINY.hidden_size, 3)
    with torch.no_grad():
        for p in routers.parameters():
            p.mul_(20)  # decisive routers, so a changed decision would show in the logits
    lora.eval()
    ids = torch.randint(0, 256, (2, 10), generator=g)
    prompt = 6
    with torch.no_grad():
        full_mask = torch.zeros(2, 10, dtype=torch.long)
        full_mask[:, :prompt] = 1
        ra_full = RoutedAdapter(lora, routers, full_mask, top_k=2)
        full = model(ids, adapter=ra_full.adapter(), route=ra_full.route).logits
        ra = RoutedAdapter(lora, routers, torch.ones(2, prompt, dtype=torch.long), top_k=2)
        out = model(ids[:, :prompt], adapter=ra.adapter(), route=ra.route, use_cache=True)
        ra.hold()
        held = {k: v.clone() for k, v in ra.weights.items()}
        past, steps = out.present, [out.logits]
        for t in range(prompt, 10):
            out = model(ids[:, t:t + 1], adapter=ra.adapter(), route=ra.route, past_key_values=past, use_cache=True)
            past = out.present
            steps.append(out.logits)
        assert all(torch.equal(held[k], ra.weights[k]) for k in held)
    cached = torch.cat(steps, dim=1)
    assert (cached - full).abs().max().item() < 1e-4
    for layer in held:
        assert torch.allclose(held[layer], ra_full.weights[layer], atol=1e-6)
        assert torch.allclose(held[layer].sum(-1), torch.ones(2))
        assert int((held[layer] > 0).sum(-1).max()) == 2


def router_config(tmp: Path, model_dir: Path, **over: Any) -> dict[str, Any]:
    cfg = make_config(tmp, model_dir, steps=8, eval_every=0)
    cfg["router"] = {"steps": 16, "eta": 0.5, "expert_lr_mult": 0.1, "lr": 0.05, "out_dir": str(tmp / "router")}
    cfg["mixed"] = {"out_dir": str(tmp / "baselines" / "mixed")}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("router")
    cfg = router_config(tmp, tiny_model_dir)
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp / "train.json", cfg)])
    assert rc == 0, stderr
    return {"cfg": cfg, "events": events, "tmp": tmp}


def test_stages_run_in_order_with_their_own_events(staged: dict[str, Any]) -> None:
    events = staged["events"]
    plans = [e for e in events if e["type"] == "plan"]
    assert [p["stage"] for p in plans] == ["experts", "router", "mixed"]
    assert plans[1]["steps"] == 16 and plans[2]["experts"] == ["mixed"]
    steps = [e for e in events if e["type"] == "step"]
    router_steps = [e for e in steps if e["stage"] == "router"]
    assert len(router_steps) == 16 and all(e["expert"] == "router" for e in router_steps)
    for e in router_steps:
        assert e["loss"] == pytest.approx(e["lm_loss"] + 0.5 * e["cls_loss"], rel=1e-5)
        assert 0.0 <= e["router_accuracy"] <= 1.0
    assert router_steps[-1]["cls_loss"] < router_steps[0]["cls_loss"]
    assert len([e for e in steps if e["stage"] == "mixed"]) == 8
    arts = [(a["kind"], a["name"], a.get("stage")) for a in events if a["type"] == "artifact"]
    assert arts == [("expert", n, None) for n in DOMAINS] + [("expert", n, "router") for n in DOMAINS] + \
        [("router", "router", "router"), ("mixed", "mixed", "mixed")]
    done = events[-1]
    assert done["type"] == "done" and done["stages"] == ["experts", "router", "mixed"] and done["stage"] == "experts"
    assert done["router"]["path"] == staged["cfg"]["router"]["out_dir"]
    assert set(done["mixed"]["val_loss"]) == set(DOMAINS)


def test_router_reports_accuracy_per_domain_on_held_out_data(staged: dict[str, Any]) -> None:
    evals = [e for e in staged["events"] if e["type"] == "eval" and e["stage"] == "router"]
    assert [e["domain"] for e in evals] == ["python", "sql"]  # docs has no held-out data
    for e in evals:
        assert e["expert"] == "router" and e["step"] == 16 and e["loss"] > 0 and e["oracle_loss"] > 0
        assert 0.0 <= e["router_accuracy"] <= 1.0 and len(e["router_accuracy_per_layer"]) == TINY.num_hidden_layers
    # The domains use disjoint byte ranges: a trained router tells them apart.
    assert min(e["router_accuracy"] for e in evals) >= 0.75
    for e in evals:  # and routed loss comes close to oracle (true-label) routing
        assert e["loss"] <= e["oracle_loss"] * 1.05
        # The confusion row sums to one and its own-expert share is the accuracy.
        assert set(e["routed_to"]) == set(DOMAINS)
        assert abs(sum(e["routed_to"].values()) - 1.0) < 1e-9
        assert abs(e["routed_to"][e["domain"]] - e["router_accuracy"]) < 1e-9


def test_router_files(staged: dict[str, Any]) -> None:
    out = Path(staged["cfg"]["router"]["out_dir"])
    assert sorted(p.name for p in out.iterdir()) == ["router.json", "router.safetensors"]
    info = json.loads((out / "router.json").read_text())
    assert info["v"] == 1 and info["experts"] == list(DOMAINS) and info["eta"] == 0.5 and info["top_k"] == 1
    assert info["layers"] == TINY.num_hidden_layers and info["hidden"] == TINY.hidden_size
    assert info["accuracy"]["docs"] is None and 0.75 <= info["accuracy"]["python"] <= 1.0
    assert info["confusion"]["docs"] is None and info["confusion"]["python"]["python"] == info["accuracy"]["python"]
    assert info["weights_sha256"] == hashlib.sha256((out / "router.safetensors").read_bytes()).hexdigest()
    tensors = load_file(out / "router.safetensors")
    assert list(tensors["router.layers.0.weight"].shape) == [3, TINY.hidden_size]
    assert list(tensors["router.layers.1.bias"].shape) == [3]
    # The decision is the n-gram classifier's, saved beside the per-layer routers.
    assert info["decision"] == "ngram" and info["ngram"] == {"orders": [1, 2, 3, 4], "buckets": 65536, "hash": HASH}
    assert list(tensors["ngram.weight"].shape) == [65536, 3] and list(tensors["ngram.bias"].shape) == [3]
    assert info["ngram_fit"]["steps"] >= 1
    routers = load_router(out, TINY.num_hidden_layers, TINY.hidden_size, 3)
    assert torch.equal(routers.layers[0].weight, tensors["router.layers.0.weight"])
    # The experts moved with the router (expert_lr_mult 0.1), so they were rewritten and say so.
    ej = json.loads((Path(staged["cfg"]["experts_dir"]) / "sql" / "expert.json").read_text())
    assert ej["router_steps"] == 16 and ej["steps"] == 8 and ej["fingerprint"] == "fp-sql"


def test_mixed_baseline_is_one_peft_lora_of_the_same_rank(staged: dict[str, Any], tiny_model_dir: Path) -> None:
    folder = Path(staged["cfg"]["mixed"]["out_dir"])
    mixed = load_file(folder / "adapter_model.safetensors")
    expert = load_file(Path(staged["cfg"]["experts_dir"]) / "python" / "adapter_model.safetensors")
    assert mixed.keys() == expert.keys()
    assert all(mixed[k].shape == expert[k].shape for k in mixed)
    ac = json.loads((folder / "adapter_config.json").read_text())
    assert ac["r"] == 4 and ac["peft_type"] == "LORA"
    ej = json.loads((folder / "expert.json").read_text())
    assert ej["domain"] == "mixed" and ej["domains"] == list(DOMAINS) and ej["steps"] == 8
    evals = [e for e in staged["events"] if e["type"] == "eval" and e["stage"] == "mixed"]
    assert [(e["expert"], e["domain"]) for e in evals] == [("mixed", "python"), ("mixed", "sql")]


def test_router_stage_alone_refreshes_the_router_over_existing_experts(
        staged: dict[str, Any], tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    experts = tmp_path / "experts"
    shutil.copytree(staged["cfg"]["experts_dir"], experts)
    before = {n: (experts / n / "adapter_model.safetensors").read_bytes() for n in DOMAINS}
    cfg = make_config(tmp_path, tiny_model_dir, experts_dir=str(experts), stages=["router"], eval_every=0)
    cfg["router"] = {"steps": 4, "eta": 0.2, "expert_lr_mult": 0.0, "out_dir": str(tmp_path / "router")}
    events = train_inproc(write_config(tmp_path / "r.json", cfg), capsys)
    assert [e["stage"] for e in events if e["type"] == "plan"] == ["router"]
    assert [(a["kind"], a["name"]) for a in events if a["type"] == "artifact"] == [("router", "router")]
    after = {n: (experts / n / "adapter_model.safetensors").read_bytes() for n in DOMAINS}
    assert after == before  # expert_lr_mult 0 freezes them
    done = events[-1]
    assert done["stage"] == "router" and done["stages"] == ["router"] and done["experts"] == []
    assert json.loads((tmp_path / "router" / "router.json").read_text())["eta"] == 0.2

    # A domain without an expert cannot be routed to: the error names it.
    shutil.rmtree(experts / "docs")
    with pytest.raises(TrainerError, match="'docs'.*no trained expert"):
        train_inproc(write_config(tmp_path / "r2.json", cfg), capsys)


def test_decision_helper_averages_layers() -> None:
    logits = torch.tensor([[[5.0, 0.0]], [[0.0, 1.0]]])  # layer 0 sure of 0, layer 1 mildly 1
    assert decision(logits).tolist() == [0]
    assert masked_mean(torch.ones(1, 2, 3), torch.zeros(1, 2)).abs().sum() == 0


def test_stop_during_stage_two_keeps_the_previous_router_and_skips_later_stages(
        tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from moa_trainer.protocol import StopFlag
    from moa_trainer.stages import RouterStage
    from moa_trainer.train import run

    flag = StopFlag()
    real_step = RouterStage.step

    def step(self: RouterStage, n: int) -> Any:
        if n == 3:
            flag.set("stdin")  # as the stdin watcher would, mid-stage
        return real_step(self, n)

    monkeypatch.setattr(RouterStage, "step", step)
    cfg = router_config(tmp_path, tiny_model_dir, steps=2)
    capsys.readouterr()
    run(write_config(tmp_path / "t.json", cfg), flag)
    from conftest import parse_events

    events = parse_events(capsys.readouterr().out)
    done = events[-1]
    assert done["type"] == "done" and done["stopped"] is True and done["stages"] == ["experts", "router"]
    assert done["router"]["steps_done"] == 3 and "mixed" not in done
    # Stage 1 finished and published its experts; the stopped stage 2 wrote no router.
    assert done["kept_previous"] == ["router"] and len(done["experts"]) == len(cfg["domains"])
    assert not (tmp_path / "router").exists()
    assert not (tmp_path / "baselines").exists()
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [2, 3]
    assert not [e for e in events if e["type"] == "eval" and e["stage"] == "router"]  # no eval after a stop


def test_the_warm_start_fits_the_routers_before_stage_two_steps(tmp_path: Path, tiny_model_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """trainer/ROUTER.md: Adam on the cross-entropy alone (top-1 routing sends the router no LM
    gradient) leaves a linear router far from what a logistic regression on the same features
    reaches; the warm start fits it first. With one stage-2 step and the same lr, the warm-started
    routers are right on every held-out window of these well-separated domains, the cold one is not."""
    accuracy = {}
    for warm in (False, True):
        tmp = tmp_path / str(warm)
        cfg = router_config(tmp, tiny_model_dir)
        cfg["router"].update(steps=1, lr=1e-3, warm_start=warm)
        events = train_inproc(write_config(tmp / "t.json", cfg), capsys)
        evals = [e for e in events if e["type"] == "eval" and e["stage"] == "router"]
        # The per-layer routers' own accuracy (the decision itself is the n-gram classifier's).
        accuracy[warm] = sum(sum(e["router_accuracy_per_layer"]) / len(e["router_accuracy_per_layer"]) for e in evals) / len(evals)
    assert accuracy[True] == 1.0 and accuracy[True] > accuracy[False], accuracy


def test_the_warm_start_reads_as_many_windows_per_domain_as_its_caps_allow(tmp_path: Path, tiny_model_dir: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The same count for every domain (the fit's classes stay balanced): `warm_windows`, but no
    more than cover the largest domain's training text twice (at least 64), and fewer when a
    quarter of the stage's time budget runs out first (then at least one chunk per domain)."""
    def warm(tag: str, **router: Any) -> dict[str, Any]:
        cfg = router_config(tmp_path / tag, tiny_model_dir)
        cfg["router"].update(steps=1, **router)
        train_inproc(write_config(tmp_path / tag / "t.json", cfg), capsys)
        info = json.loads((Path(cfg["router"]["out_dir"]) / "router.json").read_text())
        largest = max(Path(d["train"]).stat().st_size // 4 for d in cfg["domains"])
        return {"read": info["warm_start"]["windows_per_domain"], "cover": max(64, 2 * largest // cfg["seq_len"]),
                "chunk": cfg["batch_size"] * 2}

    few = warm("few", warm_windows=20)
    assert few["read"] == 20
    many = warm("many", warm_windows=10**6)
    assert many["read"] == min(10**6, many["cover"]) and many["read"] < 10**6
    rushed = warm("rushed", warm_windows=10**6, max_seconds=1e-3)
    assert rushed["read"] == min(rushed["chunk"], rushed["cover"]) < many["read"], (rushed, many)
