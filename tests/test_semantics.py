"""--semantics reference on our engine: batch invariance, m = 0 without memory, recorded in every run;
--expert-positions offset: experts stay independent, the summarizer continues after them."""

import dataclasses
import json

import pytest
import torch

from latentrl.cli import main
from latentrl.evaluation import EvalConfig, run_eval
from latentrl.latent import get_alignment, hierarchical_memory, hierarchical_trajectory, recompute, sequential_memory
from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.mas.prompts import render
from latentrl.mas.roles import topology as topology_roles
from tests.test_latent_core import assert_same_kv, parallel_kv

SHORT, LONG = "x=3; 2x?", "Natalia sold clips to 48 of her friends in April, and half as many in May. How many in all?"
FORMAT = "Put the final answer in \\boxed{}."
LATENT_ID = 6


def runtime(model, tok, topology: str, m: int, **kw) -> Runtime:
    cfg = MethodConfig(topology, m, sampling=Sampling(max_new_tokens=8), semantics="reference", **kw)
    return Runtime(model, tok, [tok.eos_token_id], cfg)


@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
@pytest.mark.parametrize("m", [0, 2])
def test_reference_mode_is_batch_invariant(model, tok, topology, m):
    """A row alone decodes what it decodes beside a longer row (the reference itself reads pad states)."""
    rt = runtime(model, tok, topology, m)
    alone = get_method("latent_mas")(rt, [SHORT], FORMAT)[0]
    batched = get_method("latent_mas")(rt, [LONG, SHORT], FORMAT)[1]
    assert alone.text == batched.text and alone.output_tokens == batched.output_tokens
    assert alone.memory_length == batched.memory_length
    if m:
        assert abs(alone.latent_norm - batched.latent_norm) < 1e-9


@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_reference_final_agent_decodes_alone_at_m0(model, tok, topology):
    """At m = 0 no worker runs: the final agent's answer does not depend on the workers' prompts."""
    rt = runtime(model, tok, topology, 0)
    (gen,) = get_method("latent_mas")(rt, [LONG], FORMAT)
    assert gen.memory_length == 0 and [a.role for a in gen.agents] == [topology_roles(topology)[-1]]
    ps = rt.config.prompt_set
    final = f"{topology}/{topology_roles(topology)[-1]}"
    other = {k: v if k == final else ("Something else entirely: {question}",) for k, v in ps.templates.items()}
    rt.config.prompt_set = dataclasses.replace(ps, templates=other)
    assert get_method("latent_mas")(rt, [LONG], FORMAT)[0].text == gen.text
    current = MethodConfig(topology, 0, sampling=Sampling(max_new_tokens=8), prompts="reference")
    (kept,) = get_method("latent_mas")(Runtime(model, tok, [tok.eos_token_id], current), [LONG], FORMAT)
    assert kept.memory_length > 0  # the current semantics keeps the workers' prompts in memory


def expert_prompts(tok):
    roles = ["math expert", "science expert, longer prompt", "code", "summarize"]
    return [[render(tok, f"{r}: {q}") for q in (SHORT, LONG)] for r in roles]


@pytest.mark.parametrize("m", [0, 2])
def test_offset_experts_are_independent_and_the_summarizer_continues_after_them(model, tok, m):
    *experts, final = expert_prompts(tok)
    align = get_alignment(model, "ridge")
    lm = hierarchical_memory(model, experts, final, m, align, tok.pad_token_id, offset_experts=True)
    for e, expert in enumerate(experts):  # each expert computes what it computes alone (RoPE is relative)
        solo = sequential_memory(model, [expert, final], m, align, tok.pad_token_id)
        # transformers computes RoPE angles in fp32, so shifted positions round differently: 2.2e-6 seen
        assert torch.allclose(lm.latents[e], solo.latents[0], atol=2e-5)
    for q in range(len(final)):  # real columns: experts one after another, then the summarizer, no gap
        pos = lm.memory.positions[q][lm.memory.mask[q].bool()]
        assert torch.equal(pos, torch.arange(len(pos)))
    # The training layout agrees column for column: a parallel forward gives the step-by-step KV.
    traj = hierarchical_trajectory(experts, final, m, tok.pad_token_id, LATENT_ID, offset_experts=True)
    kv, h_last = parallel_kv(model, traj, recompute(model, traj, align).embeds)
    assert_same_kv(lm.memory.layers(), kv, traj.attention_mask)
    assert torch.allclose(h_last, lm.h_last, atol=1e-10)


def test_semantics_and_prompts_are_recorded(model_dir, data_file, tmp_path):
    cfg = EvalConfig(model=model_dir, data_file=data_file, output=str(tmp_path), limit=2, max_new_tokens=3,
                     latent_steps=0, semantics="reference", topology="hierarchical")  # fmt: skip
    s = run_eval(cfg, progress=False)
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert (recorded["semantics"], recorded["prompts"], recorded["expert_positions"]) == ("reference", None, "shared")
    assert (s["semantics"], s["prompts"], s["expert_positions"]) == ("reference", "reference", "shared")
    rows = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert all(r["memory_length"] == 0 and list(r["tokens_per_agent"]) == ["summarizer"] for r in rows)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--semantics", "paper"], "--semantics takes current | reference, got 'paper'"),
        (["--expert-positions", "stacked"], "--expert-positions takes shared | offset"),
        (["--semantics", "reference", "--expert-positions", "offset"], "applies to --semantics current"),
        (["--prompts", "no-such-set"], "prompt set 'no-such-set': not a shipped set"),
    ],
)
def test_bad_semantics_options_are_one_line(args, message, tmp_path, capsys, data_file):
    assert main(["eval", "--data-file", data_file, "--output", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
