"""Qwen3-style thinking: --think reaches chat templates that read enable_thinking, and a budget that runs
out inside a <think> block is reported as such."""

import pytest

from latentrl.evaluation import ConfigError, EvalConfig
from latentrl.mas import MethodConfig, Runtime, get_method
from latentrl.mas.prompts import latent_prompts, render, think_truncated
from tests.conftest import CHAT_TEMPLATE, char_tokenizer

# Qwen3's switch: thinking is on unless enable_thinking is false, which writes an empty think block.
THINKING_TEMPLATE = CHAT_TEMPLATE.replace(
    "{{ '<|assistant|>' }}",
    "{{ '<|assistant|>' }}{% if enable_thinking is defined and not enable_thinking %}"
    "{{ '<think> </think> ' }}{% endif %}",
)


@pytest.fixture(scope="module")
def thinking_tok():
    return char_tokenizer(THINKING_TEMPLATE)


def test_think_reaches_the_template_and_none_keeps_its_default(thinking_tok):
    default, on, off = (thinking_tok.decode(render(thinking_tok, "hi", t)) for t in (None, True, False))
    assert default == on and "<think>" not in on
    assert off.endswith("<|assistant|><think> </think> ")
    workers, finals = latent_prompts(thinking_tok, "sequential", ["q"], "fmt", think=False)
    assert all(thinking_tok.decode(p[0]).endswith("</think> ") for p in [*workers, finals])


def test_think_is_refused_for_a_template_without_the_switch(model, tok):
    with pytest.raises(ValueError, match="enable_thinking"):
        render(tok, "hi", True)
    with pytest.raises(ValueError, match="enable_thinking"):
        Runtime(model, tok, [tok.eos_token_id], MethodConfig(think="off"))
    with pytest.raises(ConfigError, match="--think takes on | off"):
        EvalConfig(think="maybe").validate()
    assert EvalConfig(think="on").method_config().enable_thinking is True


def test_an_answer_cut_inside_a_think_block_is_reported(thinking_tok):
    plain = render(thinking_tok, "hi")
    opened = plain + thinking_tok.encode("<think> ", add_special_tokens=False)  # a template that opens it
    assert think_truncated(thinking_tok, plain, "<think> let me see")
    assert not think_truncated(thinking_tok, plain, "<think>a</think> \\boxed{4}")
    assert not think_truncated(thinking_tok, plain, "\\boxed{4}")
    assert think_truncated(thinking_tok, opened, "still thinking")
    assert not think_truncated(thinking_tok, opened, "done</think> 4")


def test_generations_carry_the_flag(model, thinking_tok):
    rt = Runtime(model, thinking_tok, [thinking_tok.eos_token_id], MethodConfig(latent_steps=1, think="off"))
    for method in ("single", "latent_mas"):
        g = get_method(method)(rt, ["What is 2+2?"], "Box it.", None)[0]
        assert g.think_truncated == think_truncated(thinking_tok, [], g.text)  # closed in the prompt: only the text
        assert g.agents[-1].think_truncated is g.think_truncated
