"""The latent engine's properties: parallel recompute == step-by-step KV, m = 0 memory, independent experts."""

import pytest
import torch

from latentrl.latent import (
    get_alignment,
    hierarchical_memory,
    hierarchical_trajectory,
    recompute,
    sequential_memory,
    sequential_trajectory,
)
from latentrl.latent.trajectory import left_pad
from latentrl.mas.prompts import render

LATENT_ID = 6  # <|reserved_0|>: its embedding row is never read
QUESTIONS = ["What is 2+2?", "Tom has 3 apples and buys 14 more; how many now?", "x?"]
ROLES = ["plan", "critique", "refine", "judge"]


def prompts(tok, roles=ROLES, questions=QUESTIONS):
    return [[render(tok, f"{r}: {q}") for q in questions] for r in roles]


def parallel_kv(model, traj, embeds):
    out = model.get_decoder()(
        inputs_embeds=embeds, attention_mask=traj.attention(model), position_ids=traj.position_ids, use_cache=True
    )
    return [(layer.keys, layer.values) for layer in out.past_key_values.layers], out.last_hidden_state[:, -1]


def assert_same_kv(step_kv, par_kv, mask):
    real = mask.bool()
    for (k1, v1), (k2, v2) in zip(step_kv, par_kv, strict=True):
        assert k1.shape == k2.shape
        # (B, H, L, D) -> compare real columns only; pad columns are masked everywhere.
        assert (k1 - k2).abs().amax(dim=(1, 3))[real].max() < 1e-10
        assert (v1 - v2).abs().amax(dim=(1, 3))[real].max() < 1e-10


@pytest.mark.parametrize("m", [0, 3])
def test_sequential_step_by_step_kv_equals_parallel_forward(model, tok, m):
    p = prompts(tok)
    align = get_alignment(model, "ridge")
    lm = sequential_memory(model, p, m, align, tok.pad_token_id)
    traj = sequential_trajectory(p, m, tok.pad_token_id, LATENT_ID)
    embeds = recompute(model, traj, align).embeds
    assert torch.equal(traj.attention_mask, lm.memory.mask)
    if m:
        filled = embeds[traj.latent_mask].view(len(QUESTIONS), -1, model.config.hidden_size)
        assert torch.allclose(filled, torch.cat(lm.latents, 1), atol=1e-10)
    kv, h_last = parallel_kv(model, traj, embeds)
    assert_same_kv(lm.memory.layers(), kv, traj.attention_mask)
    assert torch.allclose(h_last, lm.h_last, atol=1e-10)


@pytest.mark.parametrize("m", [0, 2])
def test_hierarchical_step_by_step_kv_equals_parallel_forward(model, tok, m):
    *experts, final = prompts(tok)
    align = get_alignment(model, "ridge")
    lm = hierarchical_memory(model, experts, final, m, align, tok.pad_token_id)
    traj = hierarchical_trajectory(experts, final, m, tok.pad_token_id, LATENT_ID)
    kv, h_last = parallel_kv(model, traj, recompute(model, traj, align).embeds)
    assert_same_kv(lm.memory.layers(), kv, traj.attention_mask)
    assert torch.allclose(h_last, lm.h_last, atol=1e-10)


def final_logits(model, lm):
    return model.get_output_embeddings()(lm.h_last)


@pytest.mark.parametrize("m", [0, 2])
def test_final_agent_is_conditioned_on_the_planner(model, tok, m):
    align = get_alignment(model, "ridge")
    base = prompts(tok)
    changed = prompts(tok, ["Plan very differently"] + ROLES[1:])
    a = sequential_memory(model, base, m, align, tok.pad_token_id)
    b = sequential_memory(model, changed, m, align, tok.pad_token_id)
    assert (a.memory_length < b.memory_length).all()  # the planner's prompt is in the memory at m = 0 too
    assert not torch.allclose(final_logits(model, a), final_logits(model, b), atol=1e-6)


def test_hierarchical_experts_are_independent_but_the_summarizer_sees_all(model, tok):
    align = get_alignment(model, "ridge")
    *experts, final = prompts(tok)
    changed = [prompts(tok, ["a completely different first expert"])[0]] + experts[1:]
    a = hierarchical_memory(model, experts, final, 3, align, tok.pad_token_id)
    b = hierarchical_memory(model, changed, final, 3, align, tok.pad_token_id)
    assert not torch.allclose(a.latents[0], b.latents[0], atol=1e-6)  # expert 1 changed
    for e in (1, 2):
        assert torch.allclose(a.latents[e], b.latents[e], atol=1e-10)  # experts 2, 3 untouched
    assert not torch.allclose(final_logits(model, a), final_logits(model, b), atol=1e-6)
    # and each later expert matters to the summarizer too
    changed3 = experts[:2] + [prompts(tok, ["third expert, new"])[0]]
    c = hierarchical_memory(model, changed3, final, 3, align, tok.pad_token_id)
    assert not torch.allclose(final_logits(model, a), final_logits(model, c), atol=1e-6)


def test_hidden_state_is_read_at_the_last_real_position(model, tok):
    """A row's result must not change when a longer row joins its batch (reference bug: pads read)."""
    align = get_alignment(model, "ridge")
    p = prompts(tok)
    alone = sequential_memory(model, [[x[2]] for x in p], 3, align, tok.pad_token_id)
    batched = sequential_memory(model, p, 3, align, tok.pad_token_id)
    assert torch.allclose(alone.latents[0][0], batched.latents[0][2], atol=1e-10)
    assert torch.allclose(alone.h_last[0], batched.h_last[2], atol=1e-10)


def test_recompute_with_grad_backpropagates_through_latent_steps(tok):
    from tests.conftest import tiny_model

    model = tiny_model("llama", len(tok))
    p = prompts(tok, ROLES[:2], QUESTIONS[:1])
    align = get_alignment(model, "norm")
    traj = sequential_trajectory(p, 2, tok.pad_token_id, LATENT_ID)
    embeds = recompute(model, traj, align, grad=True).embeds
    embeds[traj.latent_mask].sum().backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_left_pad_refuses_an_empty_segment():
    with pytest.raises(ValueError, match="empty prompt"):
        left_pad([[1, 2], []], 0)


@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_kv_buffer_is_sized_once_when_the_decode_budget_is_known(model, tok, topology):
    from latentrl.latent import build_memory
    from latentrl.mas.decode import Sampling, decode

    *workers, final = prompts(tok)
    align, budget = get_alignment(model, "ridge"), 5
    with torch.no_grad():
        sized = build_memory(model, topology, workers, final, 2, align, tok.pad_token_id, reserve=budget)
        grown = build_memory(model, topology, workers, final, 2, align, tok.pad_token_id)
        width = sized.memory.mask.shape[1]
        buffers = [layer._k.data_ptr() for layer in sized.memory.cache.layers]
        a = decode(sized.memory, sized.h_last, [], Sampling(max_new_tokens=budget))
        b = decode(grown.memory, grown.h_last, [], Sampling(max_new_tokens=budget))
    assert [layer._k.data_ptr() for layer in sized.memory.cache.layers] == buffers  # never reallocated
    assert all(layer._k.shape[-2] == width + budget for layer in sized.memory.cache.layers)
    assert [d.tokens for d in a] == [d.tokens for d in b]


def test_latent_stats_match_the_brute_force_cosine(model):
    from latentrl.latent.diagnostics import latent_stats

    emb = model.get_input_embeddings().weight
    latents = torch.randn(2, 3, emb.shape[1], dtype=emb.dtype)
    latents[0, 0] = 2 * emb[5]  # a scaled token embedding: its nearest cosine is 1
    norm, cos = latent_stats(model, latents)
    brute = (torch.nn.functional.normalize(latents, dim=-1) @ torch.nn.functional.normalize(emb, dim=-1).T).amax(-1)
    assert torch.allclose(cos, brute.mean(1).float(), atol=1e-6)
    assert torch.allclose(norm, latents.norm(dim=-1).mean(1).float(), atol=1e-6)
    assert brute[0, 0] > 1 - 1e-9


@torch.no_grad()
def test_memory_without_the_final_prefill_has_the_same_latents(model, tok):
    p = prompts(tok)
    align = get_alignment(model, "ridge")
    full = sequential_memory(model, p, 2, align, tok.pad_token_id)
    workers_only = sequential_memory(model, p, 2, align, tok.pad_token_id, prefill_final=False)
    assert workers_only.h_last is None
    assert torch.equal(workers_only.memory_length, full.memory_length)
    assert workers_only.memory.mask.shape[1] == full.memory.mask.shape[1] - max(map(len, p[-1]))
    assert all(torch.equal(a, b) for a, b in zip(workers_only.latents, full.latents, strict=True))
