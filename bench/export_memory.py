"""Peak memory of `moa_trainer export` on a real-size base (issue #16, "Export memory").

A random Llama of SmolLM-135M's shape (vocab 49152, hidden 576, 30 layers, 9 heads / 3 KV heads,
MLP 1536, tied embeddings: 134.5M parameters, 538 MB of float32 weights) is written as an HF
folder, then exported to ONNX by the trainer in a child process whose peak RSS is read from
wait4 (a fresh helper per measurement, so RUSAGE_CHILDREN holds that one export). A child that
only imports torch, onnx and the trainer gives the fixed overhead.

    OMP_NUM_THREADS=1 .venv/bin/python bench/export_memory.py [--layers N]

Target: peak RSS ≤ 1.5 × the weights + the fixed overhead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import REPO, write_model  # noqa: E402
from moa_trainer.model import ModelConfig  # noqa: E402

HELPER = """
import resource, subprocess, sys, json, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t0
print(json.dumps({"rc": p.returncode, "wall_s": wall, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "err": p.stderr[-1500:], "out": p.stdout[-1500:]}))
"""


def child(cmd: list[str]) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "trainer"))
    r = subprocess.run([sys.executable, "-c", HELPER, *cmd], capture_output=True, text=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=30)
    args = ap.parse_args()
    cfg = ModelConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                      num_attention_heads=9, num_key_value_heads=3, head_dim=64, rms_norm_eps=1e-5,
                      rope_theta=10000.0, max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2)
    with tempfile.TemporaryDirectory() as tmp:
        base = write_model(Path(tmp) / "base", cfg)
        weights = (base / "model.safetensors").stat().st_size
        out = Path(tmp) / "onnx" / "model.onnx"
        conf = Path(tmp) / "export.json"
        conf.write_text(json.dumps({"v": 1, "base_model": str(base), "out": str(out),
                                    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "opset": 17}))
        fixed = child([sys.executable, "-c", "import torch, onnx, numpy; import moa_trainer.export"])
        t0 = time.perf_counter()
        run = child([sys.executable, "-m", "moa_trainer", "export", "--config", str(conf)])
        if run["rc"] != 0:
            raise SystemExit(f"export failed: {run['err']}")
        on_disk = sum(f.stat().st_size for f in out.parent.iterdir())
        peak, base_mb, w_mb = float(run["peak_mb"]), float(fixed["peak_mb"]), weights / 2**20  # type: ignore[arg-type]
        print(f"weights {w_mb:.0f} MB ({cfg.num_hidden_layers} layers); export wrote {on_disk / 2**20:.0f} MB "
              f"in {run['wall_s']:.1f} s ({time.perf_counter() - t0:.1f} s with the helper)")
        print(f"peak RSS {peak:.0f} MB; fixed overhead (imports) {base_mb:.0f} MB")
        print(f"peak / weights {peak / w_mb:.2f}×; (peak − overhead) / weights {(peak - base_mb) / w_mb:.2f}× "
              f"(target ≤ 1.5×)")


if __name__ == "__main__":
    main()
