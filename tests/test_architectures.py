"""The engine's guarantees on tiny random models of every verified architecture and attention implementation.

Per (architecture, implementation): greedy outputs do not depend on the batch size, the step-by-step KV
equals one parallel forward of the trajectory row, the final agent depends on the planner at m = 0,
hierarchical experts are independent, rollout log-probs equal a teacher-forced forward of the row through
the model's own logits, and latent inputs reach the decoder at the mean norm of token inputs.
"""

from __future__ import annotations

import functools

import pytest
import torch

from latentrl.latent import build_memory, build_trajectory, get_alignment, latent_steps, recompute, sequential_memory
from latentrl.latent.hooks import UnsupportedModel, check_model, embed, head_logits
from latentrl.latent.memory import Memory, new_cache
from latentrl.latent.trajectory import Trajectory, left_pad
from latentrl.mas import get_method
from latentrl.mas.decode import Sampling, decode
from tests.architectures import ARCHS, CASES, tiny, tolerance
from tests.conftest import char_tokenizer
from tests.test_latent_core import LATENT_ID, prompts
from tests.test_methods import runtime

TOK = char_tokenizer()
SHORT = ["2+2?", "3*14?", "x?"]  # short rows: two sliding-window layers still reach the planner
ROLES = ["plan", "critique", "refine", "judge"]


@functools.cache
def model_of(name: str, impl: str) -> torch.nn.Module:
    return tiny(name, impl, len(TOK))


CASE_IDS = [f"{arch}-{impl}" for arch, impl in CASES]
METHOD_CASES = [("latent_mas", "sequential", 2), ("latent_mas", "hierarchical", 2), ("text_mas", "sequential", 0)]
EIGHT = ["2+2?", "Compute 17*23.", "x=3; 2x?", "1+1", "9-4?", "Half of 48?", "7 spiders: legs?", "12/4=?"]


@pytest.mark.slow
@pytest.mark.parametrize("method,topology,m", METHOD_CASES)
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_greedy_outputs_do_not_depend_on_batch_size(arch, impl, method, topology, m):
    rt = runtime(model_of(arch, impl), TOK, topology=topology, latent_steps=m, max_new_tokens=3)
    texts = {
        b: [g.text for q in range(0, 8, b) for g in get_method(method)(rt, EIGHT[q : q + b], "Box it.")]
        for b in (1, 3, 8)
    }
    assert len(set(texts[1])) > 1, "outputs should depend on the question, else this test proves nothing"
    assert texts[1] == texts[3] == texts[8]


@torch.no_grad()
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_a_row_does_not_depend_on_its_batch(arch, impl, topology):
    """Rows of very different lengths have long pad runs inside them; a row's latents and final state must
    be what they are alone (a window counted in columns would take in fewer real tokens when batched)."""
    model = model_of(arch, impl)
    *workers, final = prompts(TOK)
    align, tol = get_alignment(model, "ridge"), tolerance(model)
    batched = build_memory(model, topology, workers, final, 2, align, TOK.pad_token_id)
    for q in range(len(final)):
        alone = build_memory(model, topology, [[w[q]] for w in workers], [final[q]], 2, align, TOK.pad_token_id)
        assert (alone.h_last[0] - batched.h_last[q]).abs().max() < tol
        for a, b in zip(alone.latents, batched.latents, strict=True):
            assert (a[0] - b[q]).abs().max() < tol


def parallel_kv(model, traj, embeds):
    """One forward of the whole row on a plain (never cropped) cache: per-layer KV and the last state."""
    cache = new_cache()
    out = model.get_decoder()(
        inputs_embeds=embeds,
        attention_mask=traj.attention(model),
        position_ids=traj.position_ids,
        use_cache=True,
        past_key_values=cache,
    )
    return [(layer.keys, layer.values) for layer in cache.layers], out.last_hidden_state[:, -1]


@torch.no_grad()
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_step_by_step_kv_equals_one_parallel_forward(arch, impl, topology):
    model = model_of(arch, impl)
    *workers, final = prompts(TOK)
    align = get_alignment(model, "ridge")
    lm = build_memory(model, topology, workers, final, 2, align, TOK.pad_token_id)
    traj = build_trajectory(topology, workers, final, 2, TOK.pad_token_id, LATENT_ID)
    kv, h_last = parallel_kv(model, traj, recompute(model, traj, align).embeds)
    tol, real = tolerance(model), traj.attention_mask.bool()
    for (k1, v1), (k2, v2) in zip(lm.memory.layers(), kv, strict=True):
        assert k1.shape == k2.shape
        assert (k1 - k2).abs().amax(dim=(1, 3))[real].max() < tol
        assert (v1 - v2).abs().amax(dim=(1, 3))[real].max() < tol
    assert (h_last - lm.h_last).abs().max() < tol


def final_logits(model, lm) -> torch.Tensor:
    return head_logits(model, lm.h_last)


@torch.no_grad()
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_final_agent_depends_on_the_planner_at_m0(arch, impl):
    model = model_of(arch, impl)
    align = get_alignment(model, "ridge")
    a = sequential_memory(model, prompts(TOK, ROLES, SHORT), 0, align, TOK.pad_token_id)
    b = sequential_memory(model, prompts(TOK, ["Plan anew"] + ROLES[1:], SHORT), 0, align, TOK.pad_token_id)
    assert (a.memory_length < b.memory_length).all()
    change = (final_logits(model, a) - final_logits(model, b)).abs().amax(-1)
    assert (change > 1e-4).all(), change  # every row


@torch.no_grad()
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_hierarchical_experts_are_independent_and_all_reach_the_summarizer(arch, impl):
    model = model_of(arch, impl)
    align, tol = get_alignment(model, "ridge"), tolerance(model)
    *experts, final = prompts(TOK, ROLES, SHORT)

    def memory(exp):
        return build_memory(model, "hierarchical", exp, final, 3, align, TOK.pad_token_id)

    base = memory(experts)
    for e in range(3):
        changed = list(experts)
        changed[e] = prompts(TOK, ["another expert"], SHORT)[0]
        other = memory(changed)
        for k in range(3):
            diff = (base.latents[k] - other.latents[k]).abs().max()
            assert diff > 1e-4 if k == e else diff < tol
        assert ((final_logits(model, base) - final_logits(model, other)).abs().amax(-1) > 1e-4).all()


def with_completion(traj: Trajectory, ids: torch.Tensor, mask: torch.Tensor) -> Trajectory:
    """The row with completion columns appended, as the trainer lays it out (positions continue)."""
    return Trajectory(
        torch.cat([traj.input_ids, ids], 1),
        torch.cat([traj.attention_mask, mask], 1),
        torch.cat([traj.position_ids, traj.position_ids[:, -1:] + mask.cumsum(1)], 1),
        torch.cat([traj.latent_mask, torch.zeros_like(mask, dtype=torch.bool)], 1),
        torch.cat([traj.branch, torch.zeros_like(ids)], 1),
    )


@torch.no_grad()
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_rollout_logprobs_equal_a_teacher_forced_forward(arch, impl, topology):
    model = model_of(arch, impl)
    *workers, final = prompts(TOK)
    align, temp = get_alignment(model, "ridge"), 0.7
    lm = build_memory(model, topology, workers, final, 2, align, TOK.pad_token_id, reserve=6)
    gen = torch.Generator().manual_seed(0)
    decoded = decode(lm.memory, lm.h_last, [TOK.eos_token_id], Sampling(6, temp), gen, logprobs=True)
    traj = build_trajectory(topology, workers, final, 2, TOK.pad_token_id, LATENT_ID)
    comp, mask = left_pad([d.tokens[::-1] for d in decoded], TOK.pad_token_id)  # right-padded, once flipped back
    comp, mask = comp.flip(1), mask.flip(1)
    full = with_completion(traj, comp, mask)
    embeds = torch.cat([recompute(model, traj, align).embeds, embed(model, comp)], 1)
    logits = model(inputs_embeds=embeds, attention_mask=full.attention(model), position_ids=full.position_ids).logits
    P = traj.input_ids.shape[1]
    lp = torch.log_softmax(logits[:, P - 1 : -1].double() / temp, -1).gather(-1, comp[..., None])[..., 0]
    tol = 1e-5 if model.dtype == torch.float64 else 1e-3  # decode records float32 log-probs
    assert max(len(d.tokens) for d in decoded) > 1
    for i, d in enumerate(decoded):
        assert (lp[i, : len(d.tokens)] - torch.tensor(d.logprobs, dtype=lp.dtype)).abs().max() < tol


def layer0_inputs(model, run) -> torch.Tensor:
    """The hidden states the first decoder layer receives while `run()` executes, concatenated over calls."""
    seen = []

    def grab(_mod, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).reshape(-1, model.config.hidden_size))

    handle = model.get_decoder().layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return torch.cat(seen)


@torch.no_grad()
@pytest.mark.parametrize("mode", ["norm", "ridge"])
@pytest.mark.parametrize("arch,impl", CASES, ids=CASE_IDS)
def test_latent_inputs_reach_the_decoder_at_the_mean_token_norm(arch, impl, mode):
    model = model_of(arch, impl)
    vocab = torch.arange(len(TOK))[:, None]
    tokens = layer0_inputs(model, lambda: model.get_decoder()(input_ids=vocab, use_cache=False))
    target = tokens.double().norm(dim=-1).mean()
    ids, mask = left_pad(prompts(TOK)[0], TOK.pad_token_id)
    memory = Memory.empty(model, len(ids))
    h = memory.forward_ids(ids, mask)[:, -1]
    latents = layer0_inputs(model, lambda: latent_steps(memory, h, 3, get_alignment(model, mode)))
    assert latents.shape[0] == 3 * len(ids)
    rel = (latents.double().norm(dim=-1) / target - 1).abs().max()
    assert rel < (1e-9 if model.dtype == torch.float64 else 1e-5)  # no attention in between: eager is exact too


@torch.no_grad()
@pytest.mark.parametrize("arch", [a for a, (*_, impls) in ARCHS.items() if len(impls) > 1])
def test_eager_and_sdpa_agree(arch):
    """Branch masks are honoured by both: before, eager added a boolean mask and experts saw each other."""
    *experts, final = prompts(TOK, ROLES, SHORT)
    out = {}
    for impl in ("eager", "sdpa"):
        model = model_of(arch, impl)
        align = get_alignment(model, "ridge")
        lm = build_memory(model, "hierarchical", experts, final, 2, align, TOK.pad_token_id)
        traj = build_trajectory("hierarchical", experts, final, 2, TOK.pad_token_id, LATENT_ID)
        embeds = recompute(model, traj, align).embeds
        row = model(inputs_embeds=embeds, attention_mask=traj.attention(model), position_ids=traj.position_ids)
        out[impl] = (lm.h_last, row.logits[:, -1])
    for a, b in zip(out["eager"], out["sdpa"], strict=True):
        assert (a - b).abs().max() < 1e-5  # eager's float32 softmax: about 1e-6 apart; the old bug: about 1


HEADS = {  # logit post-processing in the model's forward that decoding must apply too
    "gemma2 softcap": ("Gemma2Config", dict(head_dim=16, final_logit_softcapping=0.5)),
    "cohere scale": ("CohereConfig", dict(logit_scale=3.0)),
    "granite scaling": ("GraniteConfig", dict(logits_scaling=0.25)),
}


@torch.no_grad()
@pytest.mark.parametrize("kind", HEADS)
def test_decode_logits_go_through_the_models_own_head_path(kind):
    import transformers

    from tests.architectures import COMMON

    cls, extra = HEADS[kind]
    config = getattr(transformers, cls)(vocab_size=len(TOK), **{**COMMON, **extra})
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    check_model(model)
    ids = torch.tensor([[4, 10, 11, 12, 5]])
    h = model.get_decoder()(input_ids=ids).last_hidden_state
    logits = model(input_ids=ids).logits
    assert torch.allclose(head_logits(model, h), logits, atol=1e-5)
    assert not torch.allclose(model.get_output_embeddings()(h), logits, atol=1e-2)  # the post-processing matters


def test_models_the_engine_cannot_run_exactly_are_refused_before_any_work():
    model = tiny("llama", "sdpa", len(TOK))
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(UnsupportedModel, match="attn_implementation='flex_attention' is not supported"):
        Memory.empty(model, 1)
    model = tiny("llama", "sdpa", len(TOK))

    def rescale(_mod, _args, out):  # a head path that hooks.head_logits does not know
        out.logits.mul_(2)

    model.register_forward_hook(rescale)
    with pytest.raises(UnsupportedModel, match="does not reproduce"):
        get_alignment(model, "ridge")
