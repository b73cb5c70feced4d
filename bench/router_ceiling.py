"""What would a router reading the same 64 tokens cost against labels? (trainer/ROUTER.md, experiment 7)

`python bench/router_ceiling.py WORKSPACE [--windows 128] [--finetune 600]`, with the project venv,
in a workspace where `moa train` has run (experts and router written, base `builtin:moa-tiny`).

Every held-out window (non-overlapping 128-token windows of each domain's held-out shard, up to
`--windows` per domain) is scored once under every expert: a loss per window and expert. Any
router is then a choice of column per window, and its loss is read off that table, so every row
below is scored on exactly the same windows and decided on the same first 64 tokens:

- label: each window's own domain expert (what `moa eval`'s label row does);
- oracle: the best expert for each window (a floor, not a router);
- trained router: the per-layer routers of `.moa/router`, with their experts, as stage 2 routes;
- n-gram classifier: a bag of hashed 1- to 4-grams of the prompt's token ids, one linear layer
  (fastText's shape): the decision stage 2 ships (`moa_trainer/ngram_router.py`), fitted as it
  fits it, on windows of the training shards;
- fine-tuned classifier (`--finetune STEPS`, 0 to skip): the whole base model fine-tuned with a
  linear head on its mean-pooled last hidden state, same windows.

Prints JSON: per router, the mean loss over domains, per-domain losses and accuracies, and the
difference from labels in per cent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))

from moa_trainer.experts_io import load_into_slot, read_peft_spec  # noqa: E402
from moa_trainer.hf_folder import load_base_model  # noqa: E402
from moa_trainer.lora import StackedLoRA  # noqa: E402
from moa_trainer.ngram_router import NgramRouter, fit_ngram  # noqa: E402
from moa_trainer.router import RoutedAdapter, decision, load_router  # noqa: E402

BASE = Path(__file__).resolve().parents[1] / "models" / "moa-tiny"
SEQ, PROMPT, BATCH = 128, 64, 64


def shard(ws: Path, domain: str, split: str) -> np.ndarray:
    return np.fromfile(ws / ".moa" / "cache" / "data" / domain / f"{split}.bin", dtype="<u4").astype(np.int64)


def held_out(ws: Path, names: list[str], per_domain: int) -> tuple[torch.Tensor, torch.Tensor]:
    rows, labels = [], []
    for e, n in enumerate(names):
        t = shard(ws, n, "val")
        k = min(per_domain, len(t) // (SEQ + 1))
        rows.append(torch.from_numpy(np.stack([t[i * (SEQ + 1):(i + 1) * (SEQ + 1)] for i in range(k)])))
        labels.append(torch.full((k,), e))
    return torch.cat(rows), torch.cat(labels)


def train_windows(ws: Path, names: list[str], per_domain: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs = []
    for n in names:
        t = torch.from_numpy(shard(ws, n, "train"))
        starts = torch.randint(0, len(t) - PROMPT, (per_domain,), generator=g)
        xs.append(torch.stack([t[s:s + PROMPT] for s in starts.tolist()]))
    return torch.cat(xs), torch.arange(len(names)).repeat_interleave(per_domain)


@torch.no_grad()
def loss_table(model: torch.nn.Module, lora: StackedLoRA, x: torch.Tensor, experts: int) -> torch.Tensor:
    """[windows, experts]: mean next-token loss of each window under each expert alone."""
    out = torch.zeros(len(x), experts)
    for e in range(experts):
        for lo in range(0, len(x), BATCH):
            ch = x[lo:lo + BATCH]
            logits = model(ch[:, :-1], adapter=lora.adapter(index=torch.full((len(ch),), e))).logits
            tok = F.cross_entropy(logits.float().flatten(0, 1), ch[:, 1:].flatten(), reduction="none")
            out[lo:lo + BATCH, e] = tok.view(len(ch), -1).mean(1)
    return out


@torch.no_grad()
def trained_router(model: torch.nn.Module, lora: StackedLoRA, ws: Path, x: torch.Tensor, experts: int) -> torch.Tensor:
    routers = load_router(ws / ".moa" / "router", model.config.num_hidden_layers, model.config.hidden_size, experts)
    chosen = []
    for lo in range(0, len(x), BATCH):
        ch = x[lo:lo + BATCH]
        mask = torch.zeros(len(ch), SEQ, dtype=torch.bool)
        mask[:, :PROMPT] = True
        ra = RoutedAdapter(lora, routers, mask, 1)
        model(ch[:, :-1], adapter=ra.adapter(), route=ra.route)
        chosen.append(decision(ra.stacked_logits()))
    return torch.cat(chosen)


def ngram_classifier(ws: Path, names: list[str], x: torch.Tensor) -> torch.Tensor:
    """The decision stage 2 ships (moa_trainer.ngram_router), fitted as stage 2 fits it."""
    router = NgramRouter(len(names))
    fit_ngram(router, [shard(ws, n, "train") for n in names], SEQ, 300, seed=2)
    with torch.no_grad():
        return router.logits(x[:, :PROMPT].numpy(), np.full(len(x), PROMPT)).argmax(-1)


def finetuned_classifier(ws: Path, names: list[str], x: torch.Tensor, steps: int) -> torch.Tensor:
    clf = load_base_model(BASE)
    head = torch.nn.Linear(clf.config.hidden_size, len(names))
    last: dict[str, torch.Tensor] = {}
    clf.model.norm.register_forward_hook(lambda _m, _i, o: last.__setitem__("h", o))
    opt = torch.optim.AdamW([*clf.parameters(), *head.parameters()], lr=5e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    clf.train()
    for _ in range(steps):
        xs, ys = train_windows(ws, names, 16, g)
        clf(xs)
        loss = F.cross_entropy(head(last["h"].mean(1)), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.eval()
    with torch.no_grad():
        clf(x[:, :PROMPT])
        return head(last["h"].mean(1)).argmax(-1)


def row(name: str, chosen: torch.Tensor, losses: torch.Tensor, y: torch.Tensor, names: list[str]) -> dict[str, Any]:
    per, acc = {}, {}
    for e, n in enumerate(names):
        m = y == e
        per[n] = round(float(losses[m].gather(1, chosen[m][:, None]).mean()), 4)
        acc[n] = round(float((chosen[m] == e).float().mean()), 3)
    return {"router": name, "loss": round(float(np.mean(list(per.values()))), 4), "accuracy": round(float(np.mean(list(acc.values()))), 3),
            "loss_per_domain": per, "accuracy_per_domain": acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("--windows", type=int, default=128)
    ap.add_argument("--finetune", type=int, default=600)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    ws = Path(args.workspace)
    names = [d["name"] for d in json.loads((ws / ".moa" / "moa.json").read_text())["domains"]
             if (ws / ".moa" / "experts" / d["name"]).is_dir()]
    model = load_base_model(BASE).eval()
    lora = StackedLoRA(model.config, read_peft_spec(ws / ".moa" / "experts" / names[0], names[0]), len(names)).eval()
    for e, n in enumerate(names):
        load_into_slot(lora, e, ws / ".moa" / "experts" / n, n)
    x, y = held_out(ws, names, args.windows)
    losses = loss_table(model, lora, x, len(names))
    routers: list[tuple[str, Callable[[], torch.Tensor]]] = [
        ("label", lambda: y),
        ("oracle (best expert per window)", lambda: losses.argmin(1)),
        ("trained router (per-layer, hidden states)", lambda: trained_router(model, lora, ws, x, len(names))),
        ("token 1-4-gram classifier (the shipped decision)", lambda: ngram_classifier(ws, names, x)),
    ]
    if args.finetune:
        routers.append((f"fine-tuned base classifier ({args.finetune} steps)", lambda: finetuned_classifier(ws, names, x, args.finetune)))
    rows = [row(name, choose(), losses, y, names) for name, choose in routers]
    for r in rows:
        r["vs_label_percent"] = round(100 * (r["loss"] / rows[0]["loss"] - 1), 2)
    print(json.dumps({"workspace": str(ws), "domains": names, "held_out_windows": {n: int((y == e).sum()) for e, n in enumerate(names)},
                      "prompt_tokens": PROMPT, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
