"""TRL's GRPO loss options with latent actions (latentrl/rl/loss_options.py): each supported option, with
exploration on, gives a finite loss whose gradient reaches the latent actions' log-ratio (the entropy filter
and sequence level included, which the trainer adapts); each refused one fails at config construction in one line.

The probe: the latent log-ratio is log N(e; mu_theta) - logq, with logq (the rollout's own log-density)
read from the batch. Made a leaf with grad, -d loss / d logq is exactly d loss / d(latent log-ratio), per
row: zero when an option drops or detaches the latent actions' term, nonzero when it reaches the policy.
"""

import pytest
import torch

pytest.importorskip("trl")

from latentrl.rl.config import LatentGRPOConfig  # noqa: E402
from latentrl.rl.loss_options import REFUSED, VERDICTS, WORKS, loss_option_problems  # noqa: E402
from latentrl.rl.trainer import RolloutState  # noqa: E402
from tests.test_rl import NOISE, QUESTIONS, make_trainer, random_reward, trl_batch  # noqa: E402

EXPLORE = dict(grad_mode="full", m=2, latent_noise_std=NOISE, reward=random_reward())


pytestmark = pytest.mark.usefixtures("one_thread")


def loss_and_latent_grad(trainer, chunk) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's loss on one micro-batch and d loss / d(latent log-ratio) per row (see the module docstring)."""
    chunk = dict(chunk)
    logq = chunk["latent_logq"].detach().clone().requires_grad_()
    chunk["latent_logq"] = logq
    trainer.current_gradient_accumulation_steps = 1  # set by the HF training loop; the loss reads it
    trainer.model.train()
    loss = trainer._compute_loss(trainer.model, chunk)
    loss.backward()
    return loss.detach(), -logq.grad


def advantaged(chunk) -> torch.Tensor:
    """Rows whose advantage is nonzero: only those carry policy gradient."""
    return chunk["advantages"].abs() > 1e-6


SUPPORTED = [
    {"loss_type": "grpo"},
    {"loss_type": "dr_grpo"},
    {"loss_type": "dapo"},
    {"loss_type": "bnpo"},
    {"loss_type": "cispo", "epsilon_high": 5.0},
    {"loss_type": "sapo"},
    {"loss_type": "luspo"},
    {"loss_type": "luspo", "importance_sampling_level": "sequence"},
    {"importance_sampling_level": "sequence"},
    {"top_entropy_quantile": 0.0},  # keeps only the batch's highest-entropy token, and column 0 (latent term)
    {"loss_type": "vespo"},
    {"epsilon": 0.1, "epsilon_high": 0.28},
    {"delta": 1.5},
    {"off_policy_mask_threshold": 0.5},
    {"entropy_coef": 0.01},
]


@pytest.mark.parametrize("option", SUPPORTED, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_supported_option_with_exploration_reaches_the_latent_actions(tmp_path, option):
    trainer = make_trainer(tmp_path, **{**EXPLORE, **option})
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    loss, grad = loss_and_latent_grad(trainer, chunk)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert advantaged(chunk).any(), "no row carries policy gradient: the check below would prove nothing"
    assert (grad[advantaged(chunk)].abs() > 1e-8).all()


def test_masked_truncated_completions_drop_their_latent_actions_with_them(tmp_path):
    """mask_truncated_completions zeroes a truncated row's completion mask: the whole trajectory leaves the
    loss, its latent actions included (the tiny random model never stops within 6 tokens: every row is cut)."""
    grads = {}
    for masked in (False, True):
        trainer = make_trainer(tmp_path / str(masked), **EXPLORE, mask_truncated_completions=masked)
        chunk = trl_batch(trainer, QUESTIONS[:2])[0]
        loss, grads[masked] = loss_and_latent_grad(trainer, chunk)
        assert torch.isfinite(loss)
    assert (grads[False][advantaged(chunk)].abs() > 1e-8).all()
    assert (grads[True] == 0).all() and (chunk["completion_mask"] == 0).all()


def test_later_iterations_recompute_the_latents_under_the_moved_policy(tmp_path):
    """num_iterations > 1: TRL keeps the rollout batch's old log-probs (latent term included) and scores it
    again after the policy moved; column 0's joint log-ratio is then nonzero and its gradient reaches the loss.
    (A move of 0.02 per weight gives column 0 a log-ratio near -10, a sum over every latent dimension, which the
    PPO clip zeroes: the latent actions' ratio leaves the trust region long before a token's does.)"""
    trainer = make_trainer(tmp_path, **EXPLORE, num_iterations=2)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    assert "old_per_token_logps" in chunk
    torch.manual_seed(1)
    with torch.no_grad():  # one small optimizer step, as far as the policy is concerned
        for p in trainer.model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    trainer.state.global_step += 1
    ids = torch.cat([chunk["prompt_ids"], chunk["completion_ids"]], 1)
    mask = torch.cat([chunk["prompt_mask"], chunk["completion_mask"]], 1)
    with trainer.scoring(RolloutState.from_inputs(chunk)), torch.no_grad():
        logps = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, chunk["completion_ids"].shape[1])[
            0
        ]
    moved = (logps - chunk["old_per_token_logps"])[:, 0].abs()
    assert (moved > 1e-3).all() and (moved < 0.1).all()  # off-policy, inside the clip range
    loss, grad = loss_and_latent_grad(trainer, chunk)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert (grad[advantaged(chunk)].abs() > 1e-8).all()


def test_kl_with_bias_correction_and_exploration(tmp_path):
    from peft import LoraConfig

    lora = LoraConfig(r=4, target_modules="all-linear")  # the KL reference: adapters off
    trainer = make_trainer(tmp_path, **EXPLORE, peft_config=lora, beta=0.1, use_bias_correction_kl=True)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    assert "ref_per_token_logps" in chunk
    loss, grad = loss_and_latent_grad(trainer, chunk)
    assert torch.isfinite(loss) and (grad[advantaged(chunk)].abs() > 1e-8).all()


def test_the_entropy_filter_keeps_column_0_and_still_filters_the_tokens(tmp_path):
    """TRL's filter at quantile 0 keeps one token of the batch; with exploration column 0 stays for every row."""
    trainer = make_trainer(tmp_path, **EXPLORE, top_entropy_quantile=0.0)
    entropies = torch.tensor([[0.1, 0.9, 0.2], [0.3, 0.1, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    keep = trainer.get_high_entropy_mask(entropies, mask, 1.0)
    assert keep.tolist() == [[True, True, False], [True, False, False]]
    trainer.args.latent_noise_std = 0.0  # no latent actions: TRL's own filter, column 0 not special
    assert trainer.get_high_entropy_mask(entropies, mask, 1.0).tolist() == [[False, True, False], [False] * 3]


def test_sequence_level_counts_the_latent_term_at_full_weight(tmp_path):
    """GSPO's sequence ratio averages the per-token log-ratio over a row's n completion tokens; at ratio 1
    (unclipped) d loss / d(latent log-ratio) is then n times its token-level value (1/n of a row mean there)."""
    trainer = make_trainer(tmp_path, **EXPLORE)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    _, token_level = loss_and_latent_grad(trainer, chunk)
    trainer.importance_sampling_level = "sequence"
    _, sequence_level = loss_and_latent_grad(trainer, chunk)
    n = chunk["completion_mask"].sum(1).to(token_level.dtype)
    assert advantaged(chunk).any() and (token_level[advantaged(chunk)].abs() > 1e-8).all()
    torch.testing.assert_close(sequence_level, token_level * n)


BASE = dict(output_dir="unused", per_device_train_batch_size=4, num_generations=2, use_cpu=True, bf16=False)


SEQUENCE = {"importance_sampling_level": "sequence"}


@pytest.mark.parametrize(
    "option,message",
    [
        ({**SEQUENCE, "beta": 0.04}, r"sequence with beta=0.04: .* use beta=0 or importance_sampling_level=token"),
        ({**SEQUENCE, "loss_type": "luspo", "beta": 0.1}, "importance_sampling_level=sequence with beta=0.1"),
        ({**SEQUENCE, "rollout_is_cap": 2.0}, "sequence with rollout_is_cap: .* unset rollout_is_cap"),
    ],
)
def test_refused_options_fail_in_one_line(option, message):
    exploring = dict(BASE, grad_mode="full", latent_noise_std=NOISE, latent_steps=2)
    with pytest.raises(ValueError, match=message) as err:
        LatentGRPOConfig(**exploring, **option)
    assert "\n" not in str(err.value)
    LatentGRPOConfig(**BASE, latent_steps=2, **option)  # no latent actions: TRL's token-only meaning, allowed
    LatentGRPOConfig(**{**exploring, "latent_steps": 0}, **option)
    LatentGRPOConfig(**exploring, **{k: v for k, v in option.items() if k != "importance_sampling_level"})


def test_a_nonpositive_rollout_is_cap_fails_in_one_line():
    with pytest.raises(ValueError, match=r"rollout_is_cap must be > 0 \(or unset\), got 0.0"):
        LatentGRPOConfig(**BASE, rollout_is_cap=0.0)


def test_every_verdict_is_works_or_refused_and_refusals_match_the_check():
    assert {v for v, _ in VERDICTS.values()} == {WORKS, REFUSED}
    refused = {k for k, (v, _) in VERDICTS.items() if v == REFUSED}
    assert refused == {
        "importance_sampling_level=sequence with beta>0",
        "importance_sampling_level=sequence with rollout_is_cap",
    }
    args = LatentGRPOConfig(**BASE, grad_mode="full", latent_noise_std=NOISE, latent_steps=2, top_entropy_quantile=0.5)
    assert loss_option_problems(args) == []
    args.importance_sampling_level, args.beta, args.rollout_is_cap = "sequence", 0.1, 2.0
    assert len(loss_option_problems(args)) == 2
