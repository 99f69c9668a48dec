"""Methods end to end on tiny models: batch invariance, accounting, decoding."""

import pytest
import torch

from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.mas.decode import pick

QUESTIONS = [
    "What is 2+2?",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in total?",
    "x=3; 2x?",
    "A bakery makes 120 loaves a day and sells 3/4 of them. How many are left after a week?",
    "Compute 17*23.",
    "If a train goes 60 km/h for 2.5 hours, how far does it go?",
    "1+1",
    "How many legs do 7 spiders have, if each has 8 legs and one lost 2?",
]
FORMAT = "Put the final answer in \\boxed{}."


def runtime(model, tok, **kw) -> Runtime:
    cfg = MethodConfig(sampling=Sampling(max_new_tokens=kw.pop("max_new_tokens", 10)), **kw)
    return Runtime(model, tok, [tok.eos_token_id], cfg)


def run(rt, method, batch_size):
    out = []
    for s in range(0, len(QUESTIONS), batch_size):
        out += get_method(method)(rt, QUESTIONS[s : s + batch_size], FORMAT, None)
    return out


CASES = [
    ("single", "sequential", 0),
    ("text_mas", "sequential", 0),
    ("text_mas", "hierarchical", 0),
    ("latent_mas", "sequential", 0),
    ("latent_mas", "sequential", 4),
    ("latent_mas", "hierarchical", 3),
]


@pytest.mark.parametrize("method,topology,m", CASES)
def test_greedy_outputs_do_not_depend_on_batch_size(model, tok, method, topology, m):
    rt = runtime(model, tok, topology=topology, latent_steps=m)
    results = {b: run(rt, method, b) for b in (1, 3, 8)}
    texts = {b: [g.text for g in r] for b, r in results.items()}
    assert len(set(texts[1])) > 1, "outputs should depend on the question, else this test proves nothing"
    assert texts[1] == texts[3] == texts[8]
    for b in (3, 8):
        assert [g.agents for g in results[b]] == [g.agents for g in results[1]]
        assert [g.memory_length for g in results[b]] == [g.memory_length for g in results[1]]


def test_latent_mas_accounting(model, tok):
    rt = runtime(model, tok, latent_steps=5, max_new_tokens=6)
    g = run(rt, "latent_mas", 8)[1]
    assert [a.role for a in g.agents] == ["planner", "critic", "refiner", "judger"]
    assert g.latent_steps_total == 15
    assert g.output_tokens == g.agents[-1].output_tokens > 0  # only the judger writes
    assert [a.forwards for a in g.agents[:3]] == [6, 6, 6]  # prefill + 5 latent steps each
    assert g.agents[-1].forwards == g.agents[-1].output_tokens  # prefill + one forward per token but the last
    assert g.memory_length > 15
    # KV accounting: the workers' prompts and latents are the memory; the judger adds its prompt and answer.
    assert sum(a.kv_length for a in g.agents[:3]) == g.memory_length
    assert g.kv_length == g.memory_length + g.agents[-1].kv_length > g.memory_length + g.output_tokens
    # ridge-aligned latents are rescaled to the mean input-embedding norm
    target = model.get_input_embeddings().weight.norm(dim=1).mean().item()
    assert abs(g.latent_norm - target) < 1e-6 and 0 < g.latent_cos <= 1


def test_text_mas_passes_text_on(model, tok):
    rt = runtime(model, tok, max_new_tokens=5)
    g = run(rt, "text_mas", 8)[0]
    assert all(a.text is not None for a in g.agents)
    assert g.output_tokens == sum(a.output_tokens for a in g.agents) > 5


def test_decode_stops_at_eos_and_drops_finished_rows(model, tok):
    """Rows 0 and 2 are forced to EOS at once; the others run to max_new_tokens."""
    from latentrl.latent.hooks import check_model

    check_model(model)  # its one probe forward, on first use, is not a decode step
    head = model.get_output_embeddings()
    calls = []

    def force_eos(mod, inp, out):
        calls.append(out.shape[0])
        if len(calls) == 1:  # first decode step: rows 0 and 2 say EOS
            out = out.clone()
            out[[0, 2], tok.eos_token_id] = 1e6
        return out

    handle = head.register_forward_hook(force_eos)
    try:
        gens = get_method("single")(runtime(model, tok, max_new_tokens=4), QUESTIONS[:4], FORMAT, None)
    finally:
        handle.remove()
    assert [g.output_tokens for g in gens] == [1, 4, 1, 4]
    assert gens[0].text == "" and gens[0].forwards == 1  # the prefill only
    assert calls == [4, 2, 2, 2]  # finished rows left the batch
    assert all(tok.eos_token not in g.text for g in gens)
    # The rows that went on are exactly what they are when decoded alone.
    alone = get_method("single")(runtime(model, tok, max_new_tokens=4), [QUESTIONS[1], QUESTIONS[3]], FORMAT, None)
    assert [g.text for g in alone] == [gens[1].text, gens[3].text]


def test_sampling_is_seeded_and_top_p_restricts():
    logits = torch.tensor([[5.0, 4.9, -10.0, -10.0]]).repeat(64, 1)
    s = Sampling(temperature=1.0, top_p=0.5)
    a = pick(logits, s, torch.Generator().manual_seed(1))
    b = pick(logits, s, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert set(a.tolist()) == {0}  # top-0.5 mass is the single best token
    wide = pick(logits, Sampling(temperature=1.0), torch.Generator().manual_seed(1))
    assert set(wide.tolist()) == {0, 1}


def test_invalid_configs_are_refused():
    with pytest.raises(ValueError, match="latent_steps must be >= 0"):
        MethodConfig(latent_steps=-1)
    with pytest.raises(ValueError, match="unknown topology"):
        MethodConfig(topology="ring")
    with pytest.raises(ValueError, match="unknown method"):
        get_method("telepathy")
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0)
