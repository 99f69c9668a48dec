"""How latent thoughts look: their norm, and how close they stay to real token embeddings.

Aligned latents are rescaled to the mean embedding norm, so norm drift shows up with `raw` alignment;
the cosine to the nearest input embedding tells whether latents stay near the token manifold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel


@torch.no_grad()
def latent_stats(model: PreTrainedModel, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n, d) latent inputs -> (B,) mean L2 norm and (B,) mean cosine to the nearest input embedding."""
    if latents.shape[1] == 0:
        nan = torch.full((latents.shape[0],), float("nan"), device=latents.device)
        return nan, nan
    emb = F.normalize(model.get_input_embeddings().weight.float(), dim=-1)
    flat = latents.float()
    cos = torch.stack([(F.normalize(step, dim=-1) @ emb.T).max(-1).values for step in flat.unbind(1)], 1)
    return flat.norm(dim=-1).mean(1), cos.mean(1)
