"""GRPO on latent rollouts: exact log-prob recompute, padding, checkpointing, gradient modes, TRL pin."""

import inspect
import os

import pytest
import torch

trl = pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from datasets import Dataset  # noqa: E402

from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer, RolloutState, latent_rollout  # noqa: E402
from tests.architectures import ARCHS, tiny  # noqa: E402
from tests.conftest import CHAT_TEMPLATE, char_tokenizer, tiny_model  # noqa: E402

# Exploration noise, scaled to the tiny model's embeddings (rows of norm ~1.6): the latent log-ratio's
# sensitivity to summation-order noise in the means is |eps| / std per component.
NOISE = 0.5
TOL = 2e-5  # fp32 rollout vs recompute: seen up to 5.7e-6 (12 ulps of a log-prob near -6), so 3.5x margin
SDPA_OR_ONLY = [(a, "sdpa" if "sdpa" in impls else impls[0]) for a, (*_, impls) in ARCHS.items()]
QUESTIONS = ["What is 2+3?", "Add 14 and 27, then double it.", "7*8?", "A longer question about nine apples?"]


def random_reward():
    rng = torch.Generator().manual_seed(0)
    return lambda prompts, completions, **_: torch.rand(len(prompts), generator=rng).tolist()


def make_trainer(tmp_path, grad_mode="none", topology="sequential", m=3, arch="llama", peft_config=None, reward=None,
                 model=None, tok=None, **kw):  # fmt: skip
    tok = tok or char_tokenizer()
    model = model if model is not None else tiny_model(arch, len(tok)).float()
    settings = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, max_completion_length=6,
        latent_steps=m, topology=topology, grad_mode=grad_mode, temperature=1.0, report_to=[], use_cpu=True,
        logging_steps=1, max_steps=1, beta=0.0, bf16=False,
    )  # fmt: skip
    args = LatentGRPOConfig(**{**settings, **kw})
    ds = Dataset.from_list([{"prompt": q, "gold": "5"} for q in QUESTIONS])
    return LatentGRPOTrainer(
        model=model, reward_funcs=[reward or (lambda prompts, completions, **_: [0.0] * len(prompts))], args=args,
        train_dataset=ds, processing_class=tok, answer_format="Answer in \\boxed{}.", peft_config=peft_config,
    )  # fmt: skip


def batch_from_rollout(out, pad_id):
    """TRL's layout: prompts left-padded, completions right-padded."""
    P = max(len(r) for r in out["prompt_ids"])
    C = max(len(c) for c in out["completion_ids"])
    ids, mask = [], []
    for r, c in zip(out["prompt_ids"], out["completion_ids"]):
        ids.append([pad_id] * (P - len(r)) + r + c + [pad_id] * (C - len(c)))
        mask.append([0] * (P - len(r)) + [1] * (len(r) + len(c)) + [0] * (C - len(c)))
    return torch.tensor(ids), torch.tensor(mask), C


def logps_of(trainer, out, ids, mask, C):
    with trainer.scoring(out[RolloutState.KEY]):
        return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)[0]


def rollout_vs_recompute(trainer, grad: bool, questions=QUESTIONS):
    torch.manual_seed(0)
    out = latent_rollout(questions, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    with torch.set_grad_enabled(grad):
        logps = logps_of(trainer, out, ids, mask, C)
    sampled = torch.zeros_like(logps)
    for i, lp in enumerate(out["logprobs"]):
        sampled[i, : len(lp)] = torch.tensor(lp)
    return out, logps, sampled, mask[:, -C:].bool()


@pytest.mark.parametrize("grad_mode", ["none", "full"])
@pytest.mark.parametrize("topology,m", [("sequential", 3), ("sequential", 0), ("hierarchical", 2)])
def test_rollout_logprobs_equal_recomputed_logprobs(tmp_path, grad_mode, topology, m):
    trainer = make_trainer(tmp_path, grad_mode, topology, m)
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=grad_mode == "full")
    assert valid.sum() > 8
    assert (logps - sampled)[valid].abs().max() <= TOL
    assert out["prompt_ids"][0].count(trainer.latent_id) == (3 if topology == "sequential" else 3) * m


@pytest.mark.parametrize(
    "topology,m,kw",
    [
        ("sequential", 0, {"semantics": "reference"}),
        ("hierarchical", 0, {"semantics": "reference"}),
        ("hierarchical", 2, {"semantics": "reference"}),
        ("hierarchical", 2, {"expert_positions": "offset"}),
    ],
)
def test_reference_semantics_and_offset_experts_rollout_equals_recompute(tmp_path, topology, m, kw):
    trainer = make_trainer(tmp_path, "none", topology, m, **kw)
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=False)
    assert valid.sum() > 8 and (logps - sampled)[valid].abs().max() <= TOL
    assert out["prompt_ids"][0].count(trainer.latent_id) == 3 * m
    agents = out[RolloutState.KEY].segments.shape[1]  # the reference at m = 0: the final agent's prompt alone
    assert agents == (1 if m == 0 and kw.get("semantics") == "reference" else 4)


def test_grad_none_reuses_rollout_latents_only_while_the_policy_is_the_rollouts(tmp_path):
    trainer = make_trainer(tmp_path, m=3)
    torch.manual_seed(0)
    out = latent_rollout(QUESTIONS, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    calls = []
    trainer.model.model.register_forward_hook(lambda *_: calls.append(1))

    def logps_and_forwards():
        calls.clear()
        return logps_of(trainer, out, ids, mask, C).detach(), len(calls)

    reused, n_reused = logps_and_forwards()
    trainer.args.reuse_rollout_latents = False
    recomputed, n_recomputed = logps_and_forwards()
    trainer.args.reuse_rollout_latents = True
    trainer.state.global_step += 1  # an optimizer step later: the recorded latents are stale
    stale, n_stale = logps_and_forwards()
    assert n_reused == 1 < n_recomputed == n_stale  # the teacher-forced forward alone vs the recurrence too
    valid = mask[:, -C:].bool()
    assert (reused - recomputed)[valid].abs().max() <= 1e-5
    assert torch.equal(stale, recomputed)


def test_padded_and_unpadded_rows_agree(tmp_path):
    trainer = make_trainer(tmp_path)
    out = latent_rollout(QUESTIONS, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    with torch.no_grad():
        together = logps_of(trainer, out, ids, mask, C)
        for i in range(len(QUESTIONS)):
            one = {k: [v[i]] for k, v in out.items() if k != RolloutState.KEY}
            one[RolloutState.KEY] = out[RolloutState.KEY].rows(slice(i, i + 1))
            ids1, mask1, C1 = batch_from_rollout(one, trainer.pad_id)
            alone = logps_of(trainer, one, ids1, mask1, C1)
            assert torch.allclose(alone[0, :C1], together[i, :C1], atol=1e-5)


def test_gradient_checkpointing_does_not_change_full_mode_latents(tmp_path):
    trainer = make_trainer(tmp_path, grad_mode="full")
    lm = trainer.model
    lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm.train()
    _, logps, sampled, valid = rollout_vs_recompute(trainer, grad=True)
    # policy == the model that sampled: the log-ratio (and so KL) is 0 at step 1
    assert (logps - sampled)[valid].abs().max() <= 1e-5


def test_full_and_none_give_different_gradients(tmp_path):
    grads = {}
    for mode in ("none", "full"):
        trainer = make_trainer(tmp_path / mode, grad_mode=mode)
        torch.manual_seed(0)
        out = latent_rollout(QUESTIONS[:2], trainer)
        ids, mask, C = batch_from_rollout(out, trainer.pad_id)
        logps = logps_of(trainer, out, ids, mask, C)
        logps[mask[:, -C:].bool()].sum().backward()
        grads[mode] = trainer.model.model.layers[0].self_attn.q_proj.weight.grad.clone()
    assert grads["none"].abs().sum() > 0  # the decoder's use of the latent K/V carries gradient
    assert not torch.allclose(grads["none"], grads["full"], atol=1e-7)


def test_pinned_trl_hook_signature():
    """The override relies on TRL's private `_get_per_token_logps_and_entropies`: fail loudly if it changes."""
    assert trl.__version__ == "1.16.0", "latentrl pins trl==1.16.0; re-verify LatentGRPOTrainer before moving"
    params = list(inspect.signature(trl.GRPOTrainer._get_per_token_logps_and_entropies).parameters)
    assert params[:8] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep", "batch_size",
                          "compute_entropy", "compute_aux_loss"]  # fmt: skip
    ret = inspect.signature(trl.GRPOTrainer._get_per_token_logps_and_entropies).return_annotation
    assert "tuple" in str(ret)
    assert "rollout_func" in inspect.signature(trl.GRPOTrainer.__init__).parameters
    # The state hand-off: `_generate` returns extra fields 6th, `_compute_loss(model, inputs)` takes TRL's batch dict,
    # and the batch dict is shuffled and split with every tensor in it.
    assert "return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images, tool_images" in (
        inspect.getsource(trl.GRPOTrainer._generate)
    )
    assert list(inspect.signature(trl.GRPOTrainer._compute_loss).parameters) == ["self", "model", "inputs"]
    assert "self._generate(prompts)" in inspect.getsource(trl.GRPOTrainer._generate_and_score_completions)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"latent_steps": -1}, "latent_steps must be >= 0"),
        ({"grad_mode": "half"}, "grad_mode"),
        ({"topology": "ring"}, "topology"),
        ({"latent_noise_std": 0.1}, "needs grad_mode=full"),
        ({"per_device_train_batch_size": 3, "num_generations": 2}, "num_generations"),
        ({"semantics": "paper"}, "--semantics takes current | reference"),
        ({"prompts": "no-such-set"}, "prompt set 'no-such-set'"),
    ],
)
def test_bad_recipe_fails_before_any_model_loads(tmp_path, kw, message):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match=message):
        LatentGRPOConfig(**{**base, **kw})


def test_rewards_follow_the_task_scorer():
    from latentrl.rl.rewards import closeness_reward, correctness_reward, format_reward
    from latentrl.tasks import get_task

    task = get_task("arithmetic")
    completions = ["so \\boxed{12}", "it is 15", "no idea", "\\boxed{30}", "\\boxed{} = 13",
                   "4 * \\boxed{3} = \\boxed{12}", "\\boxed{12}, so \\boxed{12}"]  # fmt: skip
    gold = ["12"] * 7
    assert correctness_reward(task)([""] * 7, completions, gold=gold) == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    # An empty box earns no format reward (a GRPO run on chains learned to write `\\boxed{}` for it), nor do
    # boxes of different values (another learned to box every operand); one value boxed twice does.
    assert format_reward(task)([""] * 7, completions, gold=gold) == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    assert closeness_reward(task)([""] * 7, completions, gold=gold) == pytest.approx([1.0, 0.7, 0.0, 0.0, 0.9, 1, 1])


@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_latent_exploration_density_is_in_both_rollout_and_recompute(tmp_path, topology):
    """Noisy latent inputs travel with their rows; log N(e; mu_theta) - log N(e; mu_rollout) joins the first
    token's log-prob: 0 for the rollout's own policy, shifted exactly by the recorded baseline."""
    trainer = make_trainer(tmp_path, "full", topology, m=2, latent_noise_std=NOISE)
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=True)
    assert (logps - sampled)[valid].abs().max() <= TOL
    state = out[RolloutState.KEY]
    assert state.latents.shape[:2] == (len(QUESTIONS), 3 * 2) and state.logq.dtype == torch.float64
    assert (state.logq < -1).all()  # about -d/2 per latent step: a real density, dropped constant aside
    logps[valid].sum().backward()  # the density's gradient reaches the model through align(h)
    assert trainer.model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    shifted = state.rows(slice(None))
    shifted.logq = state.logq + torch.tensor([0.0, 3.0, 0.0, 0.0], dtype=torch.float64)
    with torch.no_grad():
        moved = logps_of(trainer, {RolloutState.KEY: shifted}, ids, mask, C)
    assert moved[1, 0] - logps[1, 0].detach() == pytest.approx(-3.0, abs=TOL)
    assert (moved[[0, 2, 3]] - logps.detach()[[0, 2, 3]])[valid[[0, 2, 3]]].abs().max() <= TOL


def trl_batch(trainer, prompts):
    """What TRL really scores: each prompt num_generations times, generated and scored by TRL's own code,
    then shuffled and split into micro-batches as its `_prepare_inputs` does."""
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    g = trainer.args.num_generations
    inputs = [{"prompt": q, "gold": "5"} for q in prompts for _ in range(g)]
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(inputs)
    return split_tensor_dict(shuffle_sequence_dict(batch), 2)


@pytest.mark.parametrize("noise", [0.0, NOISE])
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_every_generation_is_recomputed_with_its_own_rollout_state(tmp_path, topology, noise):
    """Prompts repeated num_generations times have identical prompt rows: each row's state must still be its own."""
    grad_mode = "full" if noise else "none"
    trainer = make_trainer(tmp_path, grad_mode, topology, m=2, latent_noise_std=noise)
    for chunk in trl_batch(trainer, QUESTIONS[:2]):
        ids = torch.cat([chunk["prompt_ids"], chunk["completion_ids"]], 1)
        mask = torch.cat([chunk["prompt_mask"], chunk["completion_mask"]], 1)
        C = chunk["completion_ids"].shape[1]
        with trainer.scoring(RolloutState.from_inputs(chunk)), torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
        valid = chunk["completion_mask"].bool()
        assert (logps - chunk["sampling_per_token_logps"])[valid].abs().max() <= TOL
    if noise:  # the generations of one prompt explored differently
        latents = chunk["latent_latents"]
        assert not torch.equal(latents[0], latents[1])


def test_sampling_temperature_and_top_p_rollout_equals_recompute(tmp_path):
    trainer = make_trainer(tmp_path, temperature=0.7, top_p=0.9)
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=False)
    assert valid.sum() > 8 and (logps - sampled)[valid].abs().max() <= TOL


@pytest.mark.parametrize("arch,impl", SDPA_OR_ONLY)
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_rollout_equals_the_trainers_recompute_on_every_architecture(tmp_path, arch, impl, topology):
    """TRL's loss forward (fused head: temperature, soft-capping, logit scaling) against the engine's
    sampling log-probs, at temperature 0.7 / top_p 0.9, windows cutting into the rows."""
    model = tiny(arch, impl, len(char_tokenizer())).float()
    trainer = make_trainer(tmp_path, topology=topology, m=2, model=model, temperature=0.7, top_p=0.9)
    _, logps, sampled, valid = rollout_vs_recompute(trainer, grad=False)
    assert valid.sum() > 8 and (logps - sampled)[valid].abs().max() <= 2e-4  # fp32; eager softmax in fp32


def test_shared_worker_rollouts_run_workers_once_per_prompt_and_change_nothing(tmp_path):
    shared = make_trainer(tmp_path / "shared", m=2)
    alone = make_trainer(tmp_path / "alone", m=2, share_worker_rollouts=False)
    prompts = [q for q in QUESTIONS[:2] for _ in range(4)]
    rows = []

    def record(_module, _args, kw):
        if kw.get("inputs_embeds") is not None:  # the engine's forwards (not the model check's probe)
            rows.append(kw["inputs_embeds"].shape[0])

    hook = shared.model.model.register_forward_pre_hook(record, with_kwargs=True)
    outs = {}
    for name, trainer in (("shared", shared), ("alone", alone)):
        torch.manual_seed(0)
        outs[name] = latent_rollout(prompts, trainer)
        if name == "shared":
            hook.remove()
    assert rows[0] == 2 and max(rows) == len(prompts)  # workers on 2 distinct prompts, decode on all 8 rows
    assert outs["shared"]["completion_ids"] == outs["alone"]["completion_ids"]
    a, b = outs["shared"][RolloutState.KEY].latents, outs["alone"][RolloutState.KEY].latents
    assert (a - b).abs().max() <= TOL  # the same latents, up to batch-shape summation order
    ids, mask, C = batch_from_rollout(outs["shared"], shared.pad_id)
    with torch.no_grad():
        one = logps_of(shared, outs["shared"], ids, mask, C)
        each = logps_of(alone, outs["shared"], ids, mask, C)
    assert (one - each)[mask[:, -C:].bool()].abs().max() <= TOL


@pytest.mark.parametrize("arch,impl", SDPA_OR_ONLY)
@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_shared_prompt_loss_forward_gives_the_one_pass_logprobs_and_gradients(tmp_path, arch, impl, topology):
    """A prompt's generations share one forward of the prompt in the loss: same log-probs, same gradient."""
    model = tiny(arch, impl, len(char_tokenizer())).float()
    trainer = make_trainer(tmp_path, topology=topology, m=2, model=model, temperature=0.7)
    trainer.model.gradient_checkpointing_enable()  # TRL's default: it must not drop the shared prompt's cache
    trainer.model.train()
    prompts = [q for q in QUESTIONS[:2] for _ in range(3)]
    torch.manual_seed(0)
    out = latent_rollout(prompts, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    valid = mask[:, -C:].bool()
    calls, forward = [], trainer.shared_prompt_forward
    trainer.shared_prompt_forward = lambda *a: calls.append(1) or forward(*a)
    result = {}
    for share in (True, False):
        trainer.args.share_worker_rollouts = share
        trainer.model.zero_grad()
        logps = logps_of(trainer, out, ids, mask, C)
        (logps * valid).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
        result[share] = logps.detach(), grads
    assert calls == [1]  # the shared path ran (once), the other did not
    (a, ga), (b, gb) = result[True], result[False]
    assert (a - b)[valid].abs().max() <= TOL
    assert (ga - gb).abs().max() <= 1e-4 * gb.abs().max()


def test_beta_with_exploration_trains_with_finite_loss_and_kl(tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=4, target_modules="all-linear")  # the KL reference: adapters off
    trainer = make_trainer(tmp_path, "full", "sequential", m=2, latent_noise_std=NOISE, peft_config=lora,
                           reward=random_reward(), beta=0.1, learning_rate=0.05)  # fmt: skip
    trainer.args.max_steps = 4
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 4
    assert all(torch.isfinite(torch.tensor([h["loss"], h["kl"]])).all() for h in logs)
    assert logs[-1]["kl"] > 0  # the policy moved away from the reference, the KL (latent part included) saw it


def test_code_rewards_run_in_the_sandbox(tmp_path):
    import json

    from latentrl.rl.data import train_dataset
    from latentrl.rl.rewards import correctness_reward
    from latentrl.sandbox import enable_code_execution
    from latentrl.tasks import get_task

    fixture = str(__import__("pathlib").Path(__file__).parent / "fixtures" / "humaneval_plus.jsonl")
    rows = train_dataset("task", fixture, 0, 0, "humaneval_plus").to_list()
    meta = [r["meta"] for r in rows]
    reference = [f"```python\n{json.loads(m)['reference']}\n```" for m in meta]
    wrong = ["```python\ndef nothing():\n    return None\n```"] * len(rows)
    enable_code_execution()
    reward = correctness_reward(get_task("humaneval_plus"))
    gold = [r["gold"] for r in rows]
    assert reward([r["prompt"] for r in rows], reference, gold=gold, meta=meta) == [1.0] * len(rows)
    assert reward([r["prompt"] for r in rows], wrong, gold=gold, meta=meta) == [0.0] * len(rows)
    with pytest.raises(ValueError, match="allow_code_execution"):
        LatentGRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, use_cpu=True,
                         bf16=False, task="humaneval_plus")  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_hundreds_of_steps_with_repeating_prompts_exploration_and_kl(tmp_path):
    """A study's shape: 300 optimizer steps over 3 prompts (each seen ~100 times, num_generations copies per
    step), exploration noise on, beta > 0. Per-row rollout state has nothing to evict or mix up."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = char_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, eos_token_id=3)  # fmt: skip
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    steps = 300
    args = LatentGRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, num_generations=2, max_completion_length=2,
        latent_steps=1, grad_mode="full", latent_noise_std=NOISE, beta=0.05, learning_rate=1e-3, report_to=[],
        use_cpu=True, bf16=False, max_steps=steps, logging_steps=10, save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    ds = Dataset.from_list([{"prompt": f"{i}+{i}?", "gold": str(2 * i)} for i in range(3)])
    trainer = LatentGRPOTrainer(
        model=model, args=args, train_dataset=ds, processing_class=tok, answer_format="Answer in \\boxed{}.",
        reward_funcs=[random_reward()],
        peft_config=LoraConfig(r=2, target_modules="all-linear"),
    )  # fmt: skip
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert trainer.state.global_step == steps and len(logs) == steps // 10
    assert all(torch.isfinite(torch.tensor([h["loss"], h["kl"]])).all() for h in logs)


def tiny_of(arch: str):
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, Phi3Config

    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 pad_token_id=0)  # fmt: skip
    config = Phi3Config(**small, num_key_value_heads=2) if arch == "phi3" else GPTNeoXConfig(**small)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("arch,attention", [("phi3", "qkv_proj"), ("gpt_neox", "query_key_value")])
def test_default_lora_targets_fit_every_architecture_and_a_wrong_list_names_the_layers(arch, attention):
    from peft import get_peft_model

    from latentrl.rl.lora import lora_config

    model = tiny_of(arch)
    default = LatentGRPOConfig.__dataclass_fields__["lora_targets"].default
    peft = get_peft_model(model, lora_config(model, default, r=2, alpha=4))
    trained = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in peft.named_parameters() if ".lora_A" in n}
    assert attention in trained and len(trained) >= 3  # attention and MLP, not one stray projection
    with pytest.raises(ValueError, match=f"match no linear layer.*{attention}"):
        lora_config(tiny_of(arch), "q_proj,k_proj,v_proj,o_proj", r=2, alpha=4)
    model = tiny_of(arch)
    head = next(n for n, m in model.named_modules() if m is model.get_output_embeddings())
    with pytest.raises(ValueError, match="stay frozen"):
        lora_config(model, head, r=2, alpha=4)


@pytest.mark.parametrize(
    "kw",
    [{"top_k": 5}, {"min_p": 0.1}, {"repetition_penalty": 1.2}, {"use_vllm": True}, {"use_lora": False},
     {"generation_kwargs": {"do_sample": False}}, {"cache_implementation": "static"}],
)  # fmt: skip
def test_generation_options_the_rollout_ignores_are_refused(tmp_path, kw):
    base = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="not supported"):
        LatentGRPOConfig(**{**base, **kw})


def test_think_reaches_the_chat_template_and_a_template_without_it_is_refused(tmp_path):
    with pytest.raises(ValueError, match="enable_thinking"):
        make_trainer(tmp_path, think="on")
    tok = char_tokenizer(CHAT_TEMPLATE + "{% if enable_thinking is false %}<no-think>{% endif %}")
    trainer = make_trainer(tmp_path / "t", m=1, think="off", tok=tok)
    out = latent_rollout(QUESTIONS[:1], trainer)
    assert "<no-think>" in trainer.processing_class.decode(out["prompt_ids"][0])
