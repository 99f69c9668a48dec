"""Memory-content controls: donors, exact donor memory, content-free latents, the final agent alone,
batch invariance and rollout == recompute under each control."""

import pytest
import torch

from latentrl.latent.controls import donors, filler_embedding
from latentrl.latent.memory import Memory
from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.mas.decode import decode
from latentrl.mas.pipeline import MemoryInputs, latent_memory
from latentrl.mas.prompts import latent_prompts
from latentrl.mas.spec import LatentSpec
from latentrl.models import pad_token_id

QUESTIONS = ["What is 2+2?", "Natalia sold 48 clips, then half as many. Total?", "x=3; 2x?", "Compute 17*23."]
DONORS = [QUESTIONS[(i + 1) % len(QUESTIONS)] for i in range(len(QUESTIONS))]  # any derangement will do
FORMAT = "Put the final answer in \\boxed{}."


def build(model, tok, questions, memory=None, **spec):
    return latent_memory(model, tok, LatentSpec(**spec), questions, FORMAT, pad_token_id(tok, [tok.eos_token_id]),
                         memory, reserve=8)  # fmt: skip


def worker_kv(batch, row: int) -> list[torch.Tensor]:
    """Row `row`'s real KV columns before the final agent's prompt, per layer (keys and values stacked)."""
    mem = batch.memory.memory
    width = mem.mask.shape[1] - max(map(len, batch.final_prompts))
    real = mem.mask[row, :width].bool()
    return [torch.stack([k[row, :, :width][:, real], v[row, :, :width][:, real]]) for k, v in mem.layers()]


def test_donors_are_a_derangement_fixed_by_the_seed_and_the_ids():
    ids = [f"q{i}" for i in range(50)]
    d = donors(ids, seed=3)
    assert sorted(d) == sorted(d.values()) == sorted(ids)  # a permutation
    assert all(q != d[q] for q in ids)  # with no fixed point
    assert donors(list(reversed(ids)), seed=3) == d  # order (hence batching and resume) does not matter
    assert donors(ids, seed=4) != d
    with pytest.raises(ValueError, match="at least two"):
        donors(["only"], 0)


@pytest.mark.parametrize("topology,m", [("sequential", 2), ("hierarchical", 2), ("sequential", 0)])
def test_shuffled_gives_each_question_exactly_its_donors_memory(model, tok, topology, m):
    shuffled = build(model, tok, QUESTIONS, MemoryInputs(DONORS), topology=topology, latent_steps=m,
                     memory_control="shuffled")  # fmt: skip
    for i, donor in enumerate(DONORS):
        alone = build(model, tok, [donor], topology=topology, latent_steps=m)
        for got, want in zip(shuffled.memory.latents, alone.memory.latents):
            torch.testing.assert_close(got[i], want[0], rtol=0, atol=1e-9)
        for got, want in zip(worker_kv(shuffled, i), worker_kv(alone, 0)):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
        own = build(model, tok, [QUESTIONS[i]], topology=topology, latent_steps=m)
        assert shuffled.final_prompts[i] == own.final_prompts[0]  # the final agent reads its own question
        assert shuffled.worker_prompts[0][i] == alone.worker_prompts[0][0] != own.worker_prompts[0][0]


@pytest.mark.parametrize("control", ["noise", "pause"])
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_noise_and_pause_keep_positions_and_masks_and_change_only_the_latent_inputs(model, tok, control, topology):
    real = build(model, tok, QUESTIONS, topology=topology, latent_steps=3)
    ctrl = build(model, tok, QUESTIONS, topology=topology, latent_steps=3, memory_control=control)
    assert torch.equal(real.memory.memory.mask, ctrl.memory.memory.mask)
    assert torch.equal(real.memory.memory.positions, ctrl.memory.memory.positions)
    assert torch.equal(real.memory.memory_length, ctrl.memory.memory_length)
    assert real.worker_prompts == ctrl.worker_prompts and real.final_prompts == ctrl.final_prompts
    for got, want in zip(ctrl.memory.latents, real.memory.latents):
        assert not torch.allclose(got, want)
        if control == "noise":  # a random direction with the real latent's norm at its step (ridge: the target)
            torch.testing.assert_close(got.norm(dim=-1), want.norm(dim=-1), rtol=1e-6, atol=0)
            cos = torch.nn.functional.cosine_similarity(got, want, dim=-1)
            assert cos.abs().max() < 0.8
        else:
            filler = filler_embedding(model, tok)
            torch.testing.assert_close(got, filler.expand_as(got), rtol=0, atol=0)
    # The first worker's prompt prefill is before any latent: its KV is the same.
    first = len(real.worker_prompts[0][0])
    torch.testing.assert_close(worker_kv(real, 0)[0][..., :first, :], worker_kv(ctrl, 0)[0][..., :first, :])


def test_no_memory_equals_the_final_agent_alone(model, tok):
    cfg = MethodConfig(latent_steps=3, memory_control="no_memory", sampling=Sampling(max_new_tokens=8))
    rt = Runtime(model, tok, [tok.eos_token_id], cfg)
    got = get_method("latent_mas")(rt, QUESTIONS, FORMAT)
    _, finals = latent_prompts(tok, "sequential", QUESTIONS, FORMAT, None, cfg.prompt_set)  # with memory's note
    texts = []
    for prompt in finals:
        mem = Memory.empty(model, 1, len(prompt) + 8)
        h = mem.forward_ids(torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long))[:, -1]
        (d,) = decode(mem, h, [tok.eos_token_id], cfg.sampling)
        texts.append(tok.decode([t for t in d.tokens if t != tok.eos_token_id], skip_special_tokens=True))
    assert [g.text for g in got] == texts
    assert all(g.memory_length == 0 and len(g.agents) == 1 for g in got)


@pytest.mark.parametrize("control", ["shuffled", "noise", "pause", "no_memory"])
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_controls_are_batch_invariant(model, tok, control, topology):
    cfg = MethodConfig(topology=topology, latent_steps=2, memory_control=control, sampling=Sampling(max_new_tokens=8))
    rt = Runtime(model, tok, [tok.eos_token_id], cfg)
    seeds = [11, 12, 13, 14]
    texts = {}
    for bs in (1, 3):
        out = []
        for s in range(0, len(QUESTIONS), bs):
            memory = MemoryInputs(DONORS[s : s + bs], seeds[s : s + bs])
            out += get_method("latent_mas")(rt, QUESTIONS[s : s + bs], FORMAT, None, memory)
        texts[bs] = [g.text for g in out]
    assert texts[1] == texts[3]


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"memory_control": "swapped"}, "memory control must be one of"),
        ({"memory_control": "noise", "latent_steps": 0}, "needs latent steps > 0"),
        ({"memory_control": "pause", "latent_steps": 0}, "needs latent steps > 0"),
        ({"memory_control": "shuffled", "semantics": "reference", "latent_steps": 0}, "has no memory"),
    ],
)
def test_undefined_controls_are_refused_in_one_line(kw, message):
    with pytest.raises(ValueError, match=message) as err:
        LatentSpec(**kw)
    assert "\n" not in str(err.value)


def test_shuffled_without_donors_is_refused(model, tok):
    with pytest.raises(ValueError, match="needs each question's donor"):
        build(model, tok, QUESTIONS, topology="sequential", latent_steps=1, memory_control="shuffled")


@pytest.mark.parametrize("control", ["shuffled", "noise", "pause", "no_memory"])
@pytest.mark.parametrize("grad_mode,topology", [("none", "sequential"), ("full", "hierarchical")])
def test_rollout_equals_recompute_under_each_control(tmp_path, control, grad_mode, topology):
    pytest.importorskip("trl")
    from tests.test_rl import QUESTIONS as TRAIN_QUESTIONS
    from tests.test_rl import TOL, make_trainer, rollout_vs_recompute

    trainer = make_trainer(tmp_path, grad_mode, topology, m=2, memory_control=control, temperature=0.7)
    questions = [q for q in TRAIN_QUESTIONS[:2] for _ in range(2)]  # repeated prompts, as TRL sends them
    trainer._memory_prompts = [TRAIN_QUESTIONS[2 + i // 2] for i in range(4)]  # the batch's donor column
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=grad_mode == "full", questions=questions)
    assert valid.sum() > 4 and (logps - sampled)[valid].abs().max() <= TOL
    if control == "no_memory":
        assert out["latent_state"].latents is None and out["latent_state"].segments.shape[1] == 1


def test_grpo_with_shuffled_memory_trains_on_its_donors(tmp_path):
    pytest.importorskip("trl")
    from latentrl.rl.trainer import latent_rollout
    from tests.test_rl import QUESTIONS as TRAIN_QUESTIONS
    from tests.test_rl import make_trainer

    trainer = make_trainer(tmp_path, m=1, memory_control="shuffled")
    data = trainer.train_dataset
    assert all(d != p and d in TRAIN_QUESTIONS for p, d in zip(data["prompt"], data["memory_prompt"]))
    seen = []

    def spy(prompts, t):
        seen.extend(zip(prompts, t._memory_prompts))
        return latent_rollout(prompts, t)

    trainer.rollout_func = spy
    trainer.train()
    donor = dict(zip(data["prompt"], data["memory_prompt"]))
    assert len(seen) == 4 and all(m == donor[p] for p, m in seen)  # each row's rollout read its own donor
