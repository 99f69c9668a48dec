"""The same seed gives the same training curve: two GRPO runs with exploration log the same first steps.

A run's randomness is the rollout's sampling and its exploration noise (torch's global generator, seeded by
the HF Trainer from `seed`), the data order (TRL's sampler, seeded from `seed`) and the initial weights (the
tiny model is built from a fixed seed). On one CPU thread every op is deterministic, so the logged numbers
must be equal to the bit; a different seed must change them, or the check would prove nothing.
"""

import pytest

pytest.importorskip("trl")

from tests.test_rl import NOISE, make_trainer  # noqa: E402

TIMING = ("time", "runtime", "per_second")  # wall-clock figures differ between any two runs


def distinct_characters(prompts, completions, **_):
    """A reward that depends on what was sampled, so a different sample shows in the curve."""
    return [float(len(set(c))) for c in completions]


def first_steps(tmp_path, seed: int, steps: int = 2) -> list[dict[str, float]]:
    trainer = make_trainer(tmp_path, grad_mode="full", m=2, latent_noise_std=NOISE, reward=distinct_characters,
                           seed=seed, max_steps=steps, learning_rate=0.05)  # fmt: skip
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == steps
    return [{k: v for k, v in h.items() if not any(t in k for t in TIMING)} for h in logs]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_same_seed_same_first_steps_and_another_seed_differs(tmp_path):
    first, again, other = (first_steps(tmp_path / name, seed) for name, seed in (("a", 7), ("b", 7), ("c", 8)))
    assert {"loss", "reward", "latent/memory_length"} <= first[0].keys()
    assert first == again
    assert [h["reward"] for h in first] != [h["reward"] for h in other]
