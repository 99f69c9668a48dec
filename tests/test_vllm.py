"""The vLLM backend: the prompt embeddings it hands vLLM, its refusals, and (on a GPU) HF vs vLLM greedy.

The CPU tests need no vllm: they check that the embedding sequence is the HF final agent's context (same
next-token logits, and the same greedy text from a reference decoder that sees only those embeddings),
and that bad configurations fail before a model loads.
"""

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from latentrl.cli import main
from latentrl.evaluation import ConfigError, EvalConfig
from latentrl.latent import build_memory, get_alignment
from latentrl.mas import MethodConfig, Runtime, Sampling, get_method, vllm_decode
from latentrl.mas.decode import decode
from latentrl.mas.prompts import latent_prompts
from latentrl.mas.vllm_decode import VLLMUnavailable, prefix_embeds

QUESTIONS = ["What is 2+2?", "Tom has 3 apples and buys 14 more; how many now?", "x?", "Compute 17*23."]
FORMAT = "Put the final answer in \\boxed{}."


def hf_memory(model, tok, m, questions=QUESTIONS):
    workers, final = latent_prompts(tok, "sequential", questions, FORMAT)
    lm = build_memory(model, "sequential", workers, final, m, get_alignment(model), tok.pad_token_id)
    return workers, final, lm


@pytest.mark.parametrize("m", [0, 3])
@torch.no_grad()
def test_prefix_embeds_reproduce_the_final_agents_logits(model, tok, m):
    workers, final, lm = hf_memory(model, tok, m)
    embeds = prefix_embeds(model, workers, final, lm.latents, tok.pad_token_id)
    hf_logits = model.get_output_embeddings()(lm.h_last)
    for i, e in enumerate(embeds):
        assert e.shape == (int(lm.memory_length[i]) + len(final[i]), model.config.hidden_size)
        one_pass = model(inputs_embeds=e[None]).logits[0, -1]  # positions 0..L-1, no mask: as vLLM runs it
        assert (one_pass - hf_logits[i]).abs().max() < 1e-8
    if m:  # the latent inputs sit right after each worker's prompt
        start = len(workers[0][1])
        assert torch.equal(embeds[1][start : start + m], lm.latents[0][1])


class EmbedsOnlyEngine:
    """Stands in for vllm.LLM: greedy decoding that knows only the prompt embeddings (no cache, no mask)."""

    def __init__(self, model):
        self.model = model

    @torch.no_grad()
    def generate(self, prompts, params, use_tqdm=False):
        outs = []
        for p, sp in zip(prompts, params, strict=True):
            seq, toks = p["prompt_embeds"], []
            for _ in range(sp.max_tokens):
                toks.append(int(self.model(inputs_embeds=seq[None]).logits[0, -1].argmax()))
                if toks[-1] in sp.stop_token_ids:
                    break
                seq = torch.cat([seq, self.model.get_input_embeddings().weight[toks[-1]][None]])
            outs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=toks)]))
        return outs


@pytest.mark.parametrize("m", [0, 2])
def test_latent_mas_on_the_vllm_path_equals_the_hf_path(model, tok, monkeypatch, m):
    """The whole vllm wiring on CPU, with the engine replaced by a decoder that sees only the embeddings."""
    monkeypatch.setattr(vllm_decode, "vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_decode, "engine", EmbedsOnlyEngine)
    monkeypatch.setattr(
        vllm_decode,
        "sampling_params",
        lambda s, eos, seeds: [SimpleNamespace(max_tokens=s.max_new_tokens, stop_token_ids=eos) for _ in seeds],
    )
    out = {}
    for backend in ("hf", "vllm"):
        cfg = MethodConfig(latent_steps=m, sampling=Sampling(max_new_tokens=8), backend=backend)
        out[backend] = get_method("latent_mas")(Runtime(model, tok, [tok.eos_token_id], cfg), QUESTIONS, FORMAT, None)
    assert len({g.text for g in out["hf"]}) > 1, "outputs should depend on the question"
    assert out["vllm"] == out["hf"]  # text, per-agent traces, memory length, latent statistics


def test_hierarchical_is_refused_before_anything_loads():
    with pytest.raises(ValueError, match="sequential topology only"):
        MethodConfig(topology="hierarchical", backend="vllm")
    with pytest.raises(ConfigError, match="sequential topology only"):
        EvalConfig(topology="hierarchical", backend="vllm").validate()
    assert main(["eval", "--backend", "vllm", "--topology", "hierarchical", "--model", "/nonexistent"]) == 2


def test_other_backend_misuse_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        MethodConfig(backend="tgi")
    with pytest.raises(ConfigError, match="latent_mas only"):
        EvalConfig(method="single", backend="vllm").validate()
    with pytest.raises(ConfigError, match="merge the adapter"):
        EvalConfig(backend="vllm", adapter="runs/some-adapter").validate()
    with pytest.raises(ValueError, match="no checkpoint|has none"):
        vllm_decode.engine(SimpleNamespace(name_or_path="", dtype=torch.float32))


def test_missing_vllm_says_how_to_install_the_profile(monkeypatch, capsys):
    monkeypatch.setattr(vllm_decode, "vllm_installed", lambda: False)
    with pytest.raises(VLLMUnavailable, match="PROFILE=vllm scripts/bootstrap.sh"):
        MethodConfig(backend="vllm")
    with pytest.raises(VLLMUnavailable, match="PROFILE=vllm"):
        vllm_decode.engine(SimpleNamespace(name_or_path="/nowhere", dtype=torch.float32))
    assert main(["eval", "--backend", "vllm", "--model", "/nonexistent", "--output", "/nonexistent/out"]) == 2
    assert "PROFILE=vllm" in capsys.readouterr().err


def test_a_run_dir_from_before_the_backend_option_still_resumes(tmp_path):
    import json

    from latentrl.evaluation.rundir import check_dir
    from latentrl.tasks.sources import Data

    cfg, data = EvalConfig(output=str(tmp_path)), Data("file", None, 1, "0" * 64, "gsm8k")
    old = {k: v for k, v in cfg.fingerprint().items() if k != "backend"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    (tmp_path / "predictions.jsonl").write_text(json.dumps({"id": "0"}) + "\n")  # a directory with predictions
    check_dir(cfg, data, tmp_path, 0)  # no "another config" error
    with pytest.raises(ConfigError, match="backend"):
        check_dir(EvalConfig(output=str(tmp_path), backend="vllm"), data, tmp_path, 0)


# --- GPU: HF and vLLM agree greedily on the embedded model ------------------------------------------------

GPU_QUESTIONS = [
    "What is 2+2?",
    "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in total?",
    "A bakery makes 120 loaves a day and sells 3/4 of them. How many are left after a week?",
    "If a train goes 60 km/h for 2.5 hours, how far does it go?",
]
NEAR_TIE = 1e-2  # logits; fp32 kernels differ between HF and vLLM, so an exact tie may break either way


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU"
    if importlib.util.find_spec("vllm") is None:
        return "needs vllm: VENV=.venv-vllm PROFILE=vllm scripts/bootstrap.sh dev"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")
@pytest.mark.parametrize("m", [0, 4])
@torch.no_grad()
def test_hf_and_vllm_agree_greedily(m):
    """Token for token, except where HF itself sees a near-tie at the first difference."""
    from latentrl.models import eos_token_ids, load_model

    lm = load_model("embedded:smollm2-135m", device="cuda", dtype="float32")
    model, tok = lm.model, lm.tokenizer
    eos = eos_token_ids(model, tok)
    sampling = Sampling(max_new_tokens=48)
    rts = {
        b: Runtime(model, tok, eos, MethodConfig(latent_steps=m, sampling=sampling, backend=b)) for b in ("hf", "vllm")
    }
    gens = {b: get_method("latent_mas")(rt, GPU_QUESTIONS, FORMAT, None) for b, rt in rts.items()}

    workers, final = latent_prompts(tok, "sequential", GPU_QUESTIONS, FORMAT)
    built = build_memory(model, "sequential", workers, final, m, get_alignment(model), rts["hf"].pad_id)
    embeds = prefix_embeds(model, workers, final, built.latents, rts["hf"].pad_id)
    vllm_tokens = [d.tokens for d in vllm_decode.decode_final(rts["vllm"], workers, final, built.latents)]
    hf_tokens = [d.tokens for d in decode(built.memory, built.h_last, eos, sampling)]
    exact = 0
    for i, (a, b) in enumerate(zip(hf_tokens, vllm_tokens)):
        if a == b:
            exact += 1
            assert gens["hf"][i] == gens["vllm"][i]
            continue
        j = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        assert j < min(len(a), len(b)), f"question {i}: one output is a prefix of the other: {a} vs {b}"
        prefix = torch.tensor(a[:j], device=model.device, dtype=torch.long)
        seq = torch.cat([embeds[i], model.get_input_embeddings()(prefix)])
        logits = model(inputs_embeds=seq[None]).logits[0, -1].float()
        gap = float(logits[a[j]] - logits[b[j]])
        assert gap < NEAR_TIE, f"question {i}: HF and vLLM differ at token {j} with an HF logit gap of {gap:.4f}"
    assert exact >= len(GPU_QUESTIONS) // 2, f"only {exact}/{len(GPU_QUESTIONS)} outputs identical"
