"""The GPU benchmark script runs end to end in its smoke mode (tiny shapes; on CUDA when there is
a GPU, else on CPU), so it has not rotted when a session is lent the GPU machine; and without
CUDA its full mode refuses with the reason."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, trainer_env

pytest.importorskip("peft", reason="peft not installed (test dependency)")
BENCH = REPO_ROOT / "bench" / "gpu_bench.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = trainer_env()
    env["PYTHONPATH"] = f"{REPO_ROOT / 'bench'}:{env['PYTHONPATH']}"
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, env=env, timeout=300)


def test_gpu_bench_smoke_measures_both_sides_for_1_and_4_experts() -> None:
    r = run("--smoke")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert [x["experts"] for x in res["results"]] == [1, 4]
    for x in res["results"]:
        assert x["ours_tokens_per_s"] > 0 and x["peft_tokens_per_s"] > 0
        assert math.isclose(x["ratio_ours_over_peft"], x["ours_tokens_per_s"] / x["peft_tokens_per_s"])
        assert (x["ours_mfu"] is not None) == torch.cuda.is_available()  # MFU only against a GPU's peak
    assert res["ours_concurrent_4_over_sequential_1"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the full run is the GPU session's job")
def test_gpu_bench_full_run_without_cuda_refuses_with_the_reason() -> None:
    r = run()
    assert r.returncode != 0
    assert "needs CUDA" in r.stderr
