"""The alignment map: last-layer hidden state -> next input embedding.

A latent step feeds the model its own output hidden state as the next input. Hidden states live in
the output (unembedding) space; inputs live in the embedding space. LatentMAS bridges them with a
ridge map W_a = (W_out^T W_out + lambda I)^-1 W_out^T W_in and rescales each aligned vector to the
mean L2 norm of the input-embedding rows, so latents look like ordinary token embeddings in scale.
W_in is what the embedding module really feeds the decoder (`hooks.embed` of every id): Gemma scales
its rows by sqrt(d) inside that module, and a latent must enter at that scale, not the weight's.

Modes: `raw` (identity), `norm` (rescale only), `ridge` (map + rescale). For tied embeddings the ridge
map is ~identity, so `ridge` ~ `norm`.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from latentrl.latent.hooks import check_model, embed

MODES = ("raw", "norm", "ridge")


@dataclass(frozen=True)
class Alignment:
    """Maps (..., d) hidden states to (..., d) input embeddings. One matmul, one rescale."""

    mode: str
    matrix: torch.Tensor | None  # (d, d) in fp32 (fp64 for fp64 models); None unless ridge
    target_norm: torch.Tensor | None  # scalar; None for raw

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        if self.mode == "raw":
            return h
        x = h.to(self.target_norm.dtype)
        if self.matrix is not None:
            x = x @ self.matrix
        x = x * (self.target_norm / x.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return x.to(h.dtype)


def ridge_matrix(w_in: torch.Tensor, w_out: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_X ||W_out X - W_in||^2 + lam ||X||^2, i.e. (W_out^T W_out + lam I)^-1 W_out^T W_in."""
    gram = w_out.T @ w_out
    gram.diagonal().add_(lam)
    return torch.linalg.solve(gram, w_out.T @ w_in)


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, float], Alignment]] = weakref.WeakKeyDictionary()


@torch.no_grad()
def get_alignment(model: nn.Module, mode: str = "ridge", lam: float = 1e-5) -> Alignment:
    """The model's alignment map, computed once per (model, mode, lambda) and cached.

    Embedding weights are assumed frozen after the first call (LoRA on attention/MLP keeps them so).
    Refuses a model the engine cannot run exactly (`hooks.check_model`).
    """
    if mode not in MODES:
        raise ValueError(f"unknown alignment mode '{mode}'; choose one of {MODES}")
    per_model = _CACHE.setdefault(model, {})
    key = (mode, float(lam))
    if key not in per_model:
        check_model(model)
        table = model.get_input_embeddings().weight
        w_in = embed(model, torch.arange(table.shape[0], device=table.device)).detach()
        dtype = torch.promote_types(w_in.dtype, torch.float32)
        w_in = w_in.to(dtype)
        matrix = target = None
        if mode != "raw":
            target = w_in.norm(dim=1).mean()
        if mode == "ridge":
            w_out = model.get_output_embeddings().weight.detach().to(dtype)
            matrix = ridge_matrix(w_in, w_out, lam)
        per_model[key] = Alignment(mode, matrix, target)
    return per_model[key]
