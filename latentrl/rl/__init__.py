"""GRPO on latent rollouts: config, rollout + trainer (TRL subclass), rewards, training data."""
