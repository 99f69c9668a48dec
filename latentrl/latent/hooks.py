"""The model hooks the engine relies on, stated in one place.

The engine sees a causal LM as three parts, reached through standard transformers hooks:

- `get_input_embeddings()`: token ids -> what a token feeds the decoder, scale included (Gemma multiplies
  by sqrt(d) inside this module). A latent input goes in exactly where that output would: as
  `inputs_embeds`, so whatever the decoder does to inputs (Granite's embedding multiplier) it does to both.
- `get_decoder()`: called with `inputs_embeds`, `attention_mask` (a 2-D padding mask, or the masks of
  `latent.masks`), `position_ids` and a `DynamicCache`; its `last_hidden_state` is the post-final-norm state.
- the head path: `get_output_embeddings()` and then the logit post-processing of the CausalLM forward
  (Gemma's final_logit_softcapping, Cohere's logit_scale, Granite's logits_scaling): `head_logits`.

`check_model` verifies these once per model and refuses, in one line and before any work, a model the
engine cannot run exactly (another attention implementation, an unknown layer type, a head path that
`head_logits` does not reproduce).
"""

from __future__ import annotations

import functools
import inspect
import weakref

import torch
from transformers import PreTrainedModel

from latentrl.latent.masks import IMPLEMENTATIONS, LAYER_TYPES


class UnsupportedModel(ValueError):
    """The engine cannot run this model exactly; the message says why."""


def cache_keyword(decoder: torch.nn.Module) -> str:
    """transformers 5.24 names the cache argument `cache`, earlier 5.x `past_key_values` (asked once per class)."""
    return _cache_keyword(type(decoder))


@functools.cache
def _cache_keyword(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def embed(model: PreTrainedModel, ids: torch.Tensor) -> torch.Tensor:
    """What the tokens `ids` feed the decoder."""
    return model.get_input_embeddings()(ids)


def decoder_states(model: PreTrainedModel, embeds: torch.Tensor, attention_mask, position_ids, cache) -> torch.Tensor:
    """(B, T, d) last-layer (post final norm) states of the decoder run on `embeds`, appending to `cache`."""
    decoder = model.get_decoder()
    out = decoder(
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        **{cache_keyword(decoder): cache},
    )
    return out.last_hidden_state


def head_logits(model: PreTrainedModel, h: torch.Tensor) -> torch.Tensor:
    """Logits of last-layer states `h`, through the head and the post-processing the model's forward applies."""
    logits = model.get_output_embeddings()(h)
    config = model.config
    if (scale := getattr(config, "logit_scale", None)) is not None:
        logits = logits * scale
    if (scaling := getattr(config, "logits_scaling", None)) is not None:
        logits = logits / scaling
    if (cap := getattr(config, "final_logit_softcapping", None)) is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


_CHECKED: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def check_model(model: PreTrainedModel) -> None:
    """Refuse, with one line, a model the engine cannot run exactly (checked once per model)."""
    if model in _CHECKED:
        return
    name = type(model).__name__
    impl = model.config._attn_implementation
    if impl not in IMPLEMENTATIONS:
        raise UnsupportedModel(
            f"{name} with attn_implementation='{impl}' is not supported: the latent engine's position-counted "
            f"windows and branch masks are exact under {' and '.join(IMPLEMENTATIONS)}; load it with one of them"
        )
    unknown = set(getattr(model.config, "layer_types", None) or ()) - set(LAYER_TYPES)
    if unknown:
        raise UnsupportedModel(f"{name} has layer types {sorted(unknown)} the latent engine cannot run exactly")
    _check_head(model, name)
    _CHECKED.add(model)


@torch.no_grad()
def _check_head(model: PreTrainedModel, name: str) -> None:
    """One short forward: the model's own logits must equal `head_logits` of its decoder's last states
    (outside autocast, so both run in the model's dtype, up to a few ulps if the model upcasts its logits)."""
    seen = []
    handle = model.get_decoder().register_forward_hook(lambda _m, _i, out: seen.append(out[0]))
    dev = model.get_input_embeddings().weight.device
    try:
        with torch.autocast(dev.type, enabled=False):
            logits = model(input_ids=torch.arange(1, 5, device=dev)[None], use_cache=False).logits
            ours = head_logits(model, seen[-1])
    except Exception as err:  # refused in one line, whatever the model raised
        raise UnsupportedModel(f"{name} cannot run a plain forward here: {str(err).splitlines()[0]}") from err
    finally:
        handle.remove()
    tol = 8 * torch.finfo(ours.dtype).eps * float(logits.abs().max())
    if (ours.double() - logits.double()).abs().max() > tol:
        raise UnsupportedModel(
            f"{name}'s forward turns last hidden states into logits in a way latentrl.latent.hooks.head_logits "
            "does not reproduce; its decode and log-probs would be wrong"
        )
