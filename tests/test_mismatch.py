"""Rollout/trainer mismatch (latentrl/rl/trainer.py): the `rollout/*` metrics, the truncated importance-sampling
correction (`rollout_is_cap`, TRL's vLLM correction switched on for the latent rollout) and the latent columns of
TRL's completions table."""

import pandas as pd
import pytest
import torch

pytest.importorskip("trl")

from tests.test_rl import NOISE, QUESTIONS, TOL, make_trainer, random_reward, trl_batch  # noqa: E402

EXPLORE = dict(grad_mode="full", m=2, latent_noise_std=NOISE, reward=random_reward())
METRICS = [f"rollout/{part}_logp_diff/{stat}" for part in ("token", "latent") for stat in ("mean", "max")]


pytestmark = pytest.mark.usefixtures("one_thread")


def loss(trainer, chunk) -> torch.Tensor:
    trainer.current_gradient_accumulation_steps = 1  # set by the HF training loop; the loss reads it
    trainer.model.train()
    return trainer._compute_loss(trainer.model, chunk)


def test_the_loss_logs_the_mismatch_of_tokens_and_latents(tmp_path):
    """fp32: the recompute equals the rollout (up to float error); a shifted sampling log-prob shows in the metric."""
    trainer = make_trainer(tmp_path, **EXPLORE)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    loss(trainer, chunk)
    logged = trainer._metrics["train"]
    assert all(len(logged[name]) == 1 for name in METRICS)
    assert 0 <= logged["rollout/token_logp_diff/mean"][0] <= logged["rollout/token_logp_diff/max"][0] <= TOL
    assert 0 <= logged["rollout/latent_logp_diff/max"][0] <= TOL
    shifted = dict(chunk, sampling_per_token_logps=chunk["sampling_per_token_logps"] - 0.5)
    loss(trainer, shifted)
    assert logged["rollout/token_logp_diff/mean"][1] == pytest.approx(0.5, abs=1e-4)


def test_no_mismatch_is_logged_once_the_policy_moved(tmp_path):
    """A later optimizer step's forward is not the rollout's policy: its difference is not a mismatch."""
    trainer = make_trainer(tmp_path, **EXPLORE)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    trainer.state.global_step += 1
    loss(trainer, chunk)
    assert not any(name in trainer._metrics["train"] for name in METRICS)


def test_the_truncated_is_weights_are_computed_and_applied(tmp_path):
    cap = 1.5
    trainer = make_trainer(tmp_path, **EXPLORE, rollout_is_cap=cap)
    trainer.model.train()  # as in the training loop: TRL logs under the model's mode
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    ratio, mask = chunk["importance_sampling_ratio"], chunk["completion_mask"].bool()
    expected = torch.exp(chunk["old_per_token_logps"] - chunk["sampling_per_token_logps"]).clamp(max=cap)
    torch.testing.assert_close(ratio[mask], expected[mask])
    assert (ratio[mask] - 1).abs().max() < 1e-4  # fp32: no mismatch to correct
    assert "sampling/importance_sampling_ratio/mean" in trainer._metrics["train"]  # TRL's own metrics
    plain = loss(trainer, chunk)
    doubled = loss(trainer, dict(chunk, importance_sampling_ratio=2 * ratio))
    assert torch.isfinite(plain) and plain.abs() > 1e-6
    torch.testing.assert_close(doubled, 2 * plain)  # beta=0: the loss is linear in the weight; ignored, equal


def test_the_correction_is_off_by_default(tmp_path):
    trainer = make_trainer(tmp_path, **EXPLORE)
    chunk = trl_batch(trainer, QUESTIONS[:2])[0]
    assert "importance_sampling_ratio" not in chunk and not trainer.use_vllm


def test_the_completions_table_has_the_latent_columns(tmp_path):
    trainer = make_trainer(tmp_path, **EXPLORE, log_completions=True)
    trl_batch(trainer, QUESTIONS[:2])
    trainer.log({})
    table = pd.read_parquet(tmp_path / "completions" / "completions_00000.parquet")
    assert len(table) == 4
    assert (table["latent_m"] == 2).all()
    assert (table["memory_length"] > 2 * 2).all()  # the worker's prompt and its 2 latents at least
    assert (table["latent_norm"] > 0).all() and table["latent_nearest_cos"].between(-1, 1).all()
    assert table["latent_norm"].nunique() > 1  # per sample: each row has its own noisy latents
