"""Every event kind the trainer emits, produced by the real commands and held to
schemas/trainer-events.schema.json (conftest's parse_events checks each event it sees)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import make_config, parse_events, run_trainer, write_config
from event_contract import EVENT_TYPES, event_problems


def test_every_event_kind_of_a_real_run_keeps_the_contract(tmp_path: Path, tiny_model_dir: Path) -> None:
    seen: list[dict[str, Any]] = []
    # Stage 1 with early stopping and checkpoints, then the router and the mixed baseline.
    cfg = make_config(tmp_path, tiny_model_dir, steps=12, eval_every=2, patience=1, lr=0.0, warmup_steps=0, checkpoint_every=4)
    cfg["router"] = {"steps": 4, "eta": 0.5, "expert_lr_mult": 0.1, "lr": 0.05, "out_dir": str(tmp_path / "router")}
    cfg["mixed"] = {"out_dir": str(tmp_path / "baselines" / "mixed")}
    rc, events, _, stderr = run_trainer(["train", "--config", write_config(tmp_path / "train.json", cfg)])
    assert rc == 0, stderr
    seen += events
    # A command that fails: the error event.
    rc, events, _, _ = run_trainer(["train", "--config", str(tmp_path / "missing.json")])
    assert rc != 0
    seen += events
    kinds = {e["type"] for e in seen}
    assert kinds == set(EVENT_TYPES), f"not produced: {sorted(set(EVENT_TYPES) - kinds)}"
    router_eval = [e for e in seen if e["type"] == "eval" and e["stage"] == "router"]
    assert router_eval and "routed_to" in router_eval[0], "stage-2 evals carry the router's fields"


@pytest.mark.parametrize("bad, problem", [
    ({"v": 1, "type": "step", "stage": "experts", "expert": "a", "step": 1, "steps": 2, "loss": 1.0, "lr": 0.1,
      "tokens_per_s": 1.0, "elapsed_s": 1.0, "surprise": 1}, "field 'surprise' is not declared"),
    ({"v": 1, "type": "eval", "stage": "experts", "expert": "a", "domain": "a"}, "missing required field 'loss'"),
    ({"v": 1, "type": "plan", "stage": "experts", "experts": ["a", 3], "steps": 2}, "plan.experts[1]: int 3, expected string"),
    ({"v": 1, "type": "checkpoint", "path": "x", "step": 1.5}, "checkpoint.step: float 1.5, expected integer"),
    ({"v": 1, "type": "launch"}, "not an event of a declared type"),
])
def test_the_contract_catches_undeclared_missing_and_mistyped_fields(bad: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in event_problems(bad)), event_problems(bad)


def test_parse_events_refuses_an_event_that_breaks_the_contract() -> None:
    with pytest.raises(AssertionError, match="breaks schemas/trainer-events.schema.json"):
        parse_events('{"v":1,"type":"done","stopped":"yes"}\n')


def test_the_name_rule_is_the_schemas() -> None:
    import json

    from event_contract import SCHEMA_PATH
    from moa_trainer.train_config import DOMAIN_NAME

    schema = json.loads((SCHEMA_PATH.parent / "moa.schema.json").read_text(encoding="utf-8"))
    pattern = schema["properties"]["domains"]["items"]["properties"]["name"]["pattern"]
    assert DOMAIN_NAME.pattern == pattern, "trainer and editor accept the same domain and expert names"
    for bad in ["Python", "a.b", "../x", "-x", "x" * 65]:
        assert not DOMAIN_NAME.match(bad), bad


# .moa/moa.json's training fields and the trainer config keys they become (minutes is split into
# per-stage max_seconds by the editor, fimRate travels inside `fim`: both checked on the TS side).
TRAINING_KEYS = {"steps": "steps", "batchSize": "batch_size", "seqLen": "seq_len", "lr": "lr",
                 "warmupSteps": "warmup_steps", "seed": "seed", "evalWindows": "eval_windows",
                 "maxEpochs": "max_epochs", "patience": "patience"}


def test_train_config_defaults_and_lower_bounds_are_the_schemas(tmp_path: Path, tiny_model_dir: Path) -> None:
    import json

    from event_contract import SCHEMA_PATH
    from moa_trainer.errors import TrainerError
    from moa_trainer.train_config import parse_config as load_train_config

    schema = json.loads((SCHEMA_PATH.parent / "moa.schema.json").read_text(encoding="utf-8"))
    fields = schema["properties"]["training"]["properties"]
    full = make_config(tmp_path, tiny_model_dir)
    bare = {k: v for k, v in full.items() if k not in TRAINING_KEYS.values()}
    cfg = load_train_config(write_config(tmp_path / "bare.json", bare))
    for ts_key, py_key in TRAINING_KEYS.items():
        assert getattr(cfg, py_key) == fields[ts_key]["default"], f"{py_key}: trainer default vs moa.json's {ts_key}"
        lowest = fields[ts_key]["minimum"]
        ok = load_train_config(write_config(tmp_path / f"{py_key}-min.json", {**full, py_key: lowest}))
        assert getattr(ok, py_key) == lowest
        below = lowest - (1 if fields[ts_key]["type"] == "integer" else 0.5)
        with pytest.raises(TrainerError, match=py_key):
            load_train_config(write_config(tmp_path / f"{py_key}-below.json", {**full, py_key: below}))


def test_the_trainer_refuses_and_accepts_the_adapter_settings_the_importer_does(tmp_path: Path) -> None:
    import json

    from event_contract import SCHEMA_PATH
    from moa_trainer.errors import TrainerError
    from moa_trainer.experts_io import read_peft_spec

    contract = json.loads((SCHEMA_PATH.parent / "peft-refusals.json").read_text(encoding="utf-8"))
    valid = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    for i, case in enumerate(contract["cases"] + contract["accepted"]):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({**valid, **case["patch"]}), encoding="utf-8")
        if "option" in case:
            with pytest.raises(TrainerError) as e:
                read_peft_spec(folder, "contract")
            assert case["option"].lower() in str(e.value).lower(), (case, str(e.value))
            assert str(folder) in str(e.value), "the refusal names the file"
        else:
            assert read_peft_spec(folder, "contract").r == 4, case
