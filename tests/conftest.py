"""Tiny offline models and a character-level chat tokenizer, built from configs in milliseconds.

Models run in float64 so that greedy argmax is not flipped by summation-order noise (padding and
batch size change kernel shapes); the properties under test are exact in real arithmetic.
"""

from __future__ import annotations

import string

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>", "<|reserved_0|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<eos>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def char_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    chars = sorted(set(string.printable) - set(string.whitespace) | {" ", "\n"})
    vocab = {t: i for i, t in enumerate(SPECIALS + chars)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS[4:],
    )
    tok.chat_template = chat_template
    return tok


def tiny_model(arch: str, vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """Llama with untied embeddings or Qwen2 with tied ones; 2 layers, hidden 64, GQA."""
    torch.manual_seed(seed)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    if arch == "llama":
        config = LlamaConfig(tie_word_embeddings=False, **common)
    else:
        config = Qwen2Config(tie_word_embeddings=True, **common)
    config.initializer_range = 0.2  # sharper logits: greedy text varies with the prompt
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float64, attn_implementation="sdpa")
    return model.eval()


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and on a loaded 2-core machine they lose 10x to contention.

    Modules of GRPO runs use it with `pytestmark = pytest.mark.usefixtures("one_thread")`.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def broken_sandbox(monkeypatch):
    """The sandbox's launcher pointed at a python that does not exist: the sandbox itself cannot start."""
    from latentrl.sandbox import host

    real = host._launcher_config

    def broken(*args, **kwargs):
        config = real(*args, **kwargs)
        config["argv"][0] = "/nonexistent/python"
        return config

    monkeypatch.setattr(host, "_launcher_config", broken)


@pytest.fixture(scope="session")
def tok() -> PreTrainedTokenizerFast:
    return char_tokenizer()


@pytest.fixture(params=["llama", "qwen2"], scope="session")
def model(request, tok):
    return tiny_model(request.param, len(tok))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> str:
    """A tiny Llama checkpoint (fp32) with the char tokenizer, on disk, for runs through `load_model`."""
    d = tmp_path_factory.mktemp("tiny")
    tok = char_tokenizer()
    tiny_model("llama", len(tok)).float().save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> str:
    """Seven GSM8K-schema rows."""
    import json

    p = tmp_path_factory.mktemp("data") / "gsm8k.jsonl"
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(7)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)
