"""GRPO on latent rollouts: exact log-prob recompute, padding, checkpointing, gradient modes, TRL pin."""

import inspect
import os

import pytest
import torch

trl = pytest.importorskip("trl")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from datasets import Dataset  # noqa: E402

from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.trainer import LatentGRPOTrainer, latent_rollout  # noqa: E402
from tests.conftest import char_tokenizer, tiny_model  # noqa: E402

QUESTIONS = ["What is 2+3?", "Add 14 and 27, then double it.", "7*8?", "A longer question about nine apples?"]


def make_trainer(tmp_path, grad_mode="none", topology="sequential", m=3, arch="llama", **kw):
    tok = char_tokenizer()
    model = tiny_model(arch, len(tok)).float()
    args = LatentGRPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=4, num_generations=2, max_completion_length=6,
        latent_steps=m, topology=topology, grad_mode=grad_mode, temperature=1.0, report_to=[], use_cpu=True,
        logging_steps=1, max_steps=1, beta=0.0, bf16=False, **kw,
    )  # fmt: skip
    ds = Dataset.from_list([{"prompt": q, "gold": "5"} for q in QUESTIONS])
    return LatentGRPOTrainer(
        model=model, reward_funcs=[lambda prompts, completions, **_: [0.0] * len(prompts)], args=args,
        train_dataset=ds, processing_class=tok, answer_format="Answer in \\boxed{}.",
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


def rollout_vs_recompute(trainer, grad: bool, questions=QUESTIONS):
    torch.manual_seed(0)
    out = latent_rollout(questions, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    with torch.set_grad_enabled(grad):
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
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
    assert (logps - sampled)[valid].abs().max() <= 1e-5
    assert out["prompt_ids"][0].count(trainer.latent_id) == (3 if topology == "sequential" else 3) * m


def test_grad_none_reuses_rollout_latents_only_while_the_policy_is_the_rollouts(tmp_path):
    trainer = make_trainer(tmp_path, m=3)
    torch.manual_seed(0)
    out = latent_rollout(QUESTIONS, trainer)
    ids, mask, C = batch_from_rollout(out, trainer.pad_id)
    calls = []
    trainer.model.model.register_forward_hook(lambda *_: calls.append(1))

    def logps_and_forwards():
        calls.clear()
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
        return logps.detach(), len(calls)

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
        together, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
        for i in range(len(QUESTIONS)):
            one = {k: [v[i]] for k, v in out.items()}
            ids1, mask1, C1 = batch_from_rollout(one, trainer.pad_id)
            alone, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids1, mask1, C1)
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
        logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
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


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"latent_steps": -1}, "latent_steps must be >= 0"),
        ({"grad_mode": "half"}, "grad_mode"),
        ({"topology": "ring"}, "topology"),
        ({"latent_noise_std": 0.1}, "needs grad_mode=full"),
        ({"per_device_train_batch_size": 3, "num_generations": 2}, "num_generations"),
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
    completions = ["so \\boxed{12}", "it is 15", "no idea", "\\boxed{30}"]
    gold = ["12", "12", "12", "12"]
    assert correctness_reward(task)([""] * 4, completions, gold=gold) == [1.0, 0.0, 0.0, 0.0]
    assert format_reward(task)([""] * 4, completions, gold=gold) == [1.0, 0.0, 0.0, 1.0]
    assert closeness_reward(task)([""] * 4, completions, gold=gold) == pytest.approx([1.0, 0.7, 0.0, 0.0])


@pytest.mark.parametrize("topology", ["sequential", "hierarchical"])
def test_latent_exploration_density_is_in_both_rollout_and_recompute(tmp_path, topology):
    """Noisy latent inputs are recorded; log N(e; align(h), std^2) joins the first token's log-prob."""
    trainer = make_trainer(tmp_path, "full", topology, m=2, latent_noise_std=0.05)
    out, logps, sampled, valid = rollout_vs_recompute(trainer, grad=True)
    assert (logps - sampled)[valid].abs().max() <= 1e-4  # the density is large in magnitude: fp32 relative error
    seg = trainer._segments[tuple(out["prompt_ids"][0])]
    assert seg.latents is not None and seg.latents.shape[0] == 3 * 2
    logps[valid].sum().backward()  # the density's gradient reaches the model through align(h)
    assert trainer.model.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    quiet = make_trainer(tmp_path / "quiet", "full", topology, m=2)
    _, quiet_logps, _, _ = rollout_vs_recompute(quiet, grad=False)
    assert (logps[:, 0] - quiet_logps[:, 0]).abs().min() > 1.0  # the density term is there


def test_code_rewards_run_in_the_sandbox(tmp_path):
    import json

    from latentrl.rl.data import train_dataset
    from latentrl.rl.rewards import correctness_reward
    from latentrl.tasks import get_task
    from latentrl.tasks.sandbox import enable_code_execution

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
