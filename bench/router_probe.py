"""How separable are a workspace's domains from what the router can see? (trainer/ROUTER.md)

`python bench/router_probe.py WORKSPACE [--prompt 64] [--windows 64]`, run with the project venv on
a workspace that `moa data` (and `moa train`) has run in. For each layer, the input the router
reads (the layer's normalised input, mean-pooled over the prompt) is computed with the base model
alone, and a linear probe (logistic regression, trained on windows of the training shards, tested
on windows of the held-out shards) says how well a linear router *could* tell the domains apart.
Printed beside it: the trained router's own accuracy on the same held-out windows, and what a
probe on the embeddings alone (a bag of tokens) achieves. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))

from moa_trainer.hf_folder import load_base_model  # noqa: E402
from moa_trainer.router import decision, fit_linear, masked_mean  # noqa: E402


def windows(path: Path, length: int, count: int, seed: int) -> torch.Tensor:
    tokens = np.fromfile(path, dtype="<u4")
    if len(tokens) < length:
        return torch.zeros((0, length), dtype=torch.long)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(tokens) - length + 1, size=count)
    return torch.from_numpy(np.stack([tokens[s:s + length] for s in starts]).astype(np.int64))


@torch.no_grad()
def layer_features(model: torch.nn.Module, ids: torch.Tensor) -> list[torch.Tensor]:
    """[layers + 1] tensors [batch, hidden]: the pooled embeddings, then each layer's router input."""
    feats: dict[int, torch.Tensor] = {}
    mask = torch.ones(ids.shape, dtype=torch.bool)
    emb = model.model.embed_tokens(ids)
    out = [masked_mean(emb.float(), mask)]

    def route(layer: int, h: torch.Tensor) -> None:
        feats[layer] = masked_mean(h.float(), mask)

    model(ids, route=route)
    return out + [feats[i] for i in sorted(feats)]


def probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, classes: int) -> float:
    """The accuracy on the test windows of the fit the router's warm start makes (router.fit_linear)."""
    weight, bias = fit_linear(train_x, train_y, classes, iters=200)
    return float(((test_x @ weight.t() + bias).argmax(-1) == test_y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--windows", type=int, default=64)
    args = ap.parse_args()
    ws = Path(args.workspace)
    cfg = json.loads((ws / ".moa" / "moa.json").read_text())
    base = cfg.get("baseModel", "builtin:moa-tiny")
    base_dir = Path(__file__).resolve().parents[1] / "models" / base.split(":", 1)[1] if base.startswith("builtin:") else ws / base
    model = load_base_model(base_dir).eval()
    torch.set_num_threads(2)
    data = ws / ".moa" / "cache" / "data"
    domains = [d["name"] for d in cfg["domains"] if (data / d["name"] / "val.bin").stat().st_size >= args.prompt * 4]
    sets: dict[str, list[tuple[list[torch.Tensor], torch.Tensor]]] = {"train": [], "val": []}
    for split in sets:
        for i, d in enumerate(domains):
            ids = windows(data / d / f"{split}.bin", args.prompt, args.windows, seed=i)
            feats = layer_features(model, ids)
            sets[split].append((feats, torch.full((ids.shape[0],), i)))
    layers = len(sets["train"][0][0])
    cat = lambda split, l: (torch.cat([f[l] for f, _ in sets[split]]), torch.cat([y for _, y in sets[split]]))  # noqa: E731
    result: dict[str, object] = {"domains": domains, "prompt_tokens": args.prompt, "windows_per_domain": args.windows}
    result["probe_accuracy"] = {("embeddings" if l == 0 else f"layer {l - 1}"): round(probe(*cat("train", l), *cat("val", l), len(domains)), 3)
                                for l in range(layers)}
    all_train = torch.cat([cat("train", l)[0] for l in range(layers)], 1)
    all_val = torch.cat([cat("val", l)[0] for l in range(layers)], 1)
    result["probe_accuracy_all_layers"] = round(probe(all_train, cat("train", 0)[1], all_val, cat("val", 0)[1], len(domains)), 3)
    router_dir = ws / ".moa" / "router"
    if (router_dir / "router.json").is_file():
        info = json.loads((router_dir / "router.json").read_text())
        if info.get("experts") == domains:
            from moa_trainer.router import load_router
            routers = load_router(router_dir, model.config.num_hidden_layers, model.config.hidden_size, len(domains))
            x, y = cat("val", 1)
            stacked = torch.stack([routers.logits(l, cat("val", l + 1)[0]) for l in range(layers - 1)])
            result["trained_router_on_base_features"] = round(float((decision(stacked) == y).float().mean()), 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
