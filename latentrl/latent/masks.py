"""Attention masks built from real-token positions, one per attention layer type.

Why not let transformers build them: it counts a sliding window in *columns*, and a latent row has pad
columns inside it (every segment is left-padded so latent columns line up across the batch), so a row's
window would depend on its batch. It also cannot express hierarchical branches. Here a key is visible
to a query iff it is a real column at or left of the query's column, in the same branch or shared, and,
for a sliding layer of window w, `pos_q - pos_k < w` with positions counted in real tokens
(transformers' `kv_idx > q_idx - w`, with positions in place of columns). Every column also sees itself,
so no attention row is empty (an empty row gives NaN that masked pad keys would carry into later layers).

The format is what each attention implementation honours: boolean for sdpa, additive float (0 / dtype
min) for eager, whose kernel adds the mask to the scores (a boolean mask would be added as 0 / 1).
A model with several layer types gets a dict keyed by type, which those transformers models accept.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

IMPLEMENTATIONS = ("eager", "sdpa")
LAYER_TYPES = ("full_attention", "sliding_attention")

Masks = torch.Tensor | dict[str, torch.Tensor]


def layer_windows(model: PreTrainedModel) -> dict[str, int | None]:
    """{layer type: sliding window or None} over the types the model's layers use.

    Models with `layer_types` (Qwen2/3, Gemma 2/3, ...) window their sliding layers; the others (Mistral,
    Mixtral, Phi-3, Qwen3-MoE) use `sliding_window` in every layer when it is set."""
    config = model.config
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if not types:
        return {"full_attention": window}
    return {t: window if t == "sliding_attention" else None for t in dict.fromkeys(types)}


def own_masks(model: PreTrainedModel) -> bool:
    """Whether the engine must pass its own masks rather than a 2-D padding mask.

    transformers' masks from a 2-D mask are exact only without sliding windows, and under eager they
    leave a leading pad's attention row empty: NaN in float64, once eager's softmax casts the float64
    minimum to float32 -inf, which the masked pad keys then carry into the next layer."""
    return model.config._attn_implementation == "eager" or any(w is not None for w in layer_windows(model).values())


def visible(
    key_real: torch.Tensor,
    query_cols: torch.Tensor,
    key_branch: torch.Tensor | None = None,
    query_branch: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, Q, K) bool: real keys at or left of each query's column, in its branch (0 = shared sees all).

    key_real (B, K); query_cols (Q,) the queries' column indices among the K keys; branches (B, K), (B, Q)."""
    cols = torch.arange(key_real.shape[1], device=key_real.device)
    causal = cols[None, :] <= query_cols[:, None]
    vis = causal[None] & key_real.bool()[:, None, :]
    if key_branch is not None:
        q, k = query_branch[:, :, None], key_branch[:, None, :]
        vis = vis & ((q == 0) | (q == k))
    return vis | (cols[None, :] == query_cols[:, None])[None]


def attention_masks(model: PreTrainedModel, vis: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor) -> Masks:
    """The decoder's `attention_mask` for (B, Q, K) visibility and (B, Q) / (B, K) positions: a
    (B, 1, Q, K) mask, or a dict of them keyed by layer type."""
    impl = model.config._attn_implementation
    dtype = model.get_input_embeddings().weight.dtype
    out = {}
    for kind, window in layer_windows(model).items():
        v = vis
        if window is not None:
            v = v & ((query_pos[:, :, None] - key_pos[:, None, :]) < window)  # a column's own distance is 0
        v = v[:, None]
        out[kind] = (
            v
            if impl == "sdpa"
            else torch.zeros(v.shape, dtype=dtype, device=v.device).masked_fill(~v, torch.finfo(dtype).min)
        )
    return out if len(out) > 1 else next(iter(out.values()))


def select_rows(masks: Masks, index: torch.Tensor) -> Masks:
    """Batch rows `index` of a mask or of each mask in a dict."""
    if isinstance(masks, dict):
        return {k: select_rows(v, index) for k, v in masks.items()}
    return masks[index.to(masks.device)]


def slice_masks(masks: Masks, rows: slice, cols: slice) -> Masks:
    """Query rows / key columns of a mask or of each mask in a dict (2-D padding masks: key columns)."""
    if isinstance(masks, dict):
        return {k: slice_masks(v, rows, cols) for k, v in masks.items()}
    return masks[:, cols] if masks.dim() == 2 else masks[..., rows, cols]
