from __future__ import annotations

import math

import pytest
import torch

from conftest import TINY, random_model
from moa_trainer.errors import TrainerError
from moa_trainer.lora import LoraSpec, StackedLoRA, one_hot_index, parse_spec

SPEC = LoraSpec(r=4, alpha=8.0, target_modules=("q_proj", "v_proj", "o_proj", "down_proj"))


def randomized(lora: StackedLoRA, seed: int) -> StackedLoRA:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return lora


def test_init_follows_peft() -> None:
    lora = StackedLoRA(TINY, SPEC, num_experts=3)
    for layer in lora.layers:
        for name, st in layer.items():  # type: ignore[union-attr]
            assert torch.count_nonzero(st.B) == 0
            bound = 1 / math.sqrt(st.A.shape[-1])
            assert st.A.abs().max() <= bound and st.A.abs().max() > bound / 2
            assert not torch.equal(st.A[0], st.A[1]), "experts must start from different A"


def test_zero_b_equals_base() -> None:
    model = random_model()
    lora = StackedLoRA(TINY, SPEC, num_experts=2)
    ids = torch.randint(0, 256, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(ids).logits
        routed = model(ids, adapter=lora.adapter(weights=torch.rand(3, 2))).logits
        indexed = model(ids, adapter=lora.adapter(index=torch.tensor([0, 1, 1]))).logits
    assert torch.equal(base, routed) and torch.equal(base, indexed)


def test_one_hot_routing_equals_single_expert_lora() -> None:
    model = random_model()
    stacked = randomized(StackedLoRA(TINY, SPEC, num_experts=3), seed=1)
    ids = torch.randint(0, 256, (3, 9), generator=torch.Generator().manual_seed(0))
    experts = torch.tensor([2, 0, 1])
    with torch.no_grad():
        by_weight = model(ids, adapter=stacked.adapter(weights=torch.eye(3)[experts])).logits
        by_index = model(ids, adapter=stacked.adapter(index=experts)).logits
        for row, e in enumerate(experts.tolist()):
            single = StackedLoRA(TINY, SPEC, num_experts=1)
            single.load_peft_state_dict(0, stacked.peft_state_dict(e), "test")
            alone = model(ids[row:row + 1], adapter=single.adapter(index=torch.tensor([0]))).logits
            assert (alone[0] - by_weight[row]).abs().max() < 1e-5
            assert (alone[0] - by_index[row]).abs().max() < 1e-5
        base = model(ids).logits
    assert (by_index - base).abs().max() > 1e-2, "the experts must actually change the output"


def test_scaling_is_alpha_over_r() -> None:
    x = torch.randn(1, 2, TINY.hidden_size)
    lora = randomized(StackedLoRA(TINY, SPEC, num_experts=1), seed=2)
    st = lora.stack(0, "q_proj")
    delta = lora.adapter(index=torch.tensor([0]))(0, "q_proj", x)
    assert delta is not None
    expected = (SPEC.alpha / SPEC.r) * (x @ st.A[0].T @ st.B[0].T)
    assert (delta - expected).abs().max() < 1e-5
    assert lora.adapter(index=torch.tensor([0]))(0, "k_proj", x) is None


def test_per_expert_clipping_keeps_experts_independent() -> None:
    lora = StackedLoRA(TINY, SPEC, num_experts=2)
    for p in lora.parameters():
        p.grad = torch.zeros_like(p)
        p.grad[0] = 100.0
        p.grad[1] = 1e-4
    before = [p.grad[1].clone() for p in lora.parameters()]
    norms = lora.expert_grad_clip_(1.0)
    assert norms[0] > 1.0 and norms[1] < 1.0
    sq = sum(float(p.grad[0].pow(2).sum()) for p in lora.parameters())
    assert abs(math.sqrt(sq) - 1.0) < 1e-4
    assert all(torch.equal(p.grad[1], b) for p, b in zip(lora.parameters(), before))


def test_batch_layout_and_spec_validation() -> None:
    assert one_hot_index(3, 2, "cpu").tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(TrainerError, match="unknown lora.target_modules"):
        parse_spec({"target_modules": ["qkv"]}, "cfg")
    with pytest.raises(TrainerError, match="lora.r"):
        parse_spec({"r": 0}, "cfg")


def test_grouped_rows_equal_gathered_rows() -> None:
    """The training path (rows in blocks per expert) computes what per-row gathering computes."""
    lora = randomized(StackedLoRA(TINY, SPEC, num_experts=3), 5)
    st = lora.stack(0, "q_proj")
    x = torch.randn(7, 5, TINY.hidden_size, generator=torch.Generator().manual_seed(1))
    from moa_trainer.lora import grouped_delta, indexed_delta

    for counts in ([3, 2, 2], [0, 4, 3]):
        index = torch.cat([torch.full((c,), e) for e, c in enumerate(counts)])
        assert torch.allclose(grouped_delta(x, st.A, st.B, counts), indexed_delta(x, st.A, st.B, index), atol=1e-5)
    x6 = x[:6]
    assert torch.allclose(grouped_delta(x6, st.A, st.B, [2, 2, 2]),
                          indexed_delta(x6, st.A, st.B, one_hot_index(3, 2, "cpu")), atol=1e-5)
