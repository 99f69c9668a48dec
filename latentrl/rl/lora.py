"""LoRA adapters for the policy: targets that fit any architecture, and one clear line when they do not.

Module names differ across families (Llama's q_proj/k_proj/v_proj, Phi-3's fused qkv_proj, GPT-NeoX's
query_key_value), so a fixed name list silently trains a fraction of the intended layers on some of
them. The default, PEFT's `all-linear`, wraps every linear layer but the LM head on any architecture.
"""

from __future__ import annotations

import torch
from peft import LoraConfig
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

ALL_LINEAR = "all-linear"


def linear_layer_names(model: PreTrainedModel) -> set[str]:
    """Leaf names of the linear layers LoRA can wrap (the LM head excluded)."""
    head = model.get_output_embeddings()
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear | Conv1D) and module is not head
    }


def lora_config(model: PreTrainedModel, targets: str, r: int, alpha: int) -> LoraConfig:
    """The adapters' config; every named target must match a linear layer of this model (PEFT's suffix
    rule), and none may be the embeddings or the LM head, which the alignment map is computed from once."""
    names = [t.strip() for t in targets.split(",") if t.strip()]
    if names != [ALL_LINEAR]:
        layers = linear_layer_names(model)
        frozen = {n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                  if m is model.get_output_embeddings() or m is model.get_input_embeddings()}  # fmt: skip
        if bad := [t for t in names if t in frozen]:
            raise ValueError(f"lora_targets {bad}: the embeddings and LM head stay frozen (the alignment map is "
                             "computed from them once)")  # fmt: skip
        if missing := [t for t in names if t not in layers]:
            raise ValueError(
                f"lora_targets {missing} match no linear layer of this {model.config.model_type} model; its linear "
                f"layers are {', '.join(sorted(layers))} (or use lora_targets={ALL_LINEAR})"
            )
    target = ALL_LINEAR if names == [ALL_LINEAR] else names
    return LoraConfig(r=r, lora_alpha=alpha, target_modules=target, task_type="CAUSAL_LM")
