"""latentrl: latent multi-agent reasoning (LatentMAS) and RL on latent rollouts."""

__version__ = "0.1.0"
