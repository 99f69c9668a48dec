"""How latent thoughts look: their norm, and how close they stay to real token embeddings.

Aligned latents are rescaled to the mean embedding norm, so norm drift shows up with `raw` alignment;
the cosine to the nearest input embedding tells whether latents stay near the token manifold.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

_ROW_NORMS: weakref.WeakKeyDictionary[torch.nn.Module, torch.Tensor] = weakref.WeakKeyDictionary()


def _row_norms(model: PreTrainedModel) -> torch.Tensor:
    """(V,) L2 norms of the input embedding rows, once per model (embeddings stay frozen, as for alignment)."""
    if model not in _ROW_NORMS:
        _ROW_NORMS[model] = model.get_input_embeddings().weight.detach().float().norm(dim=-1).clamp_min(1e-12)
    return _ROW_NORMS[model]


@torch.no_grad()
def latent_stats(model: PreTrainedModel, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n, d) latent inputs -> (B,) mean L2 norm and (B,) mean cosine to the nearest input embedding.

    Cosines are dot products divided by the cached row norms: no normalized copy of the embedding matrix
    (113 MB for the embedded model) per call."""
    if latents.shape[1] == 0:
        nan = torch.full((latents.shape[0],), float("nan"), device=latents.device)
        return nan, nan
    emb = model.get_input_embeddings().weight.detach()
    norms = _row_norms(model)
    flat = latents.float()
    cos = torch.stack(
        [((F.normalize(s, dim=-1).to(emb.dtype) @ emb.T).float() / norms).max(-1).values for s in flat.unbind(1)], 1
    )
    return flat.norm(dim=-1).mean(1), cos.mean(1)
