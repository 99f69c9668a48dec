"""Rendering an agent's turn through the tokenizer's own chat template (no model-family assumptions)."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from latentrl.mas.roles import Role, topology


def agent_message(role: Role, question: str, answer_format: str | None = None, context: str | None = None) -> str:
    """The user message of one agent: its instruction, what it receives from others, the question,
    and (final agent only) the answer format."""
    parts = [role.instruction]
    if context:
        parts.append(context)
    parts.append(f"Question: {question}")
    if answer_format:
        parts.append(answer_format)
    return "\n\n".join(parts)


def text_context(messages: list[tuple[str, str]]) -> str | None:
    """TextMAS: the earlier agents' outputs, labelled by role."""
    if not messages:
        return None
    body = "\n\n".join(f"[{name}]\n{text.strip()}" for name, text in messages)
    return f"Outputs of the other agents:\n\n{body}"


def latent_context(names: list[str]) -> str | None:
    """LatentMAS: the earlier agents wrote no text; their reasoning is in the shared KV memory."""
    if not names:
        return None
    return f"The reasoning of the other agents ({', '.join(names)}) is in your working memory as latent thoughts."


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


THINK = {None: None, "on": True, "off": False}  # --think -> the chat template's enable_thinking


def check_think(tokenizer: PreTrainedTokenizerBase, think: bool | None) -> None:
    """A thinking switch needs a chat template that reads `enable_thinking` (Qwen3's do)."""
    if think is not None and "enable_thinking" not in (tokenizer.chat_template or ""):
        raise ValueError("--think needs a chat template that reads enable_thinking (as Qwen3's); this model's does not")


def render(tokenizer: PreTrainedTokenizerBase, message: str, think: bool | None = None) -> list[int]:
    """Token ids of one user turn plus the assistant header, as the chat template writes them.

    `think` is passed to the template as `enable_thinking`; None leaves the template's own default."""
    check_think(tokenizer, think)
    extra = {} if think is None else {"enable_thinking": think}
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True, return_dict=False, **extra
    )
    return list(ids)


def think_truncated(tokenizer: PreTrainedTokenizerBase, prompt: list[int], text: str) -> bool:
    """Whether an answer ends inside a <think> block, opened by the answer or by the template's generation
    prompt (the prompt's last tokens are enough to see that)."""
    whole = tokenizer.decode(prompt[-8:]) + text
    start = whole.rfind(THINK_OPEN)
    return start >= 0 and THINK_CLOSE not in whole[start:]


def latent_prompts(
    tokenizer: PreTrainedTokenizerBase,
    topology_name: str,
    questions: list[str],
    answer_format: str,
    think: bool | None = None,
) -> tuple[list[list[list[int]]], list[list[int]]]:
    """LatentMAS prompt ids: workers[agent][question] and final[question]; shared by inference and training.
    `think`: as in `render`."""
    *workers, final = topology(topology_name)
    hierarchical = topology_name == "hierarchical"
    worker_prompts = []
    for k, role in enumerate(workers):
        earlier = [] if hierarchical else [r.name for r in workers[:k]]
        worker_prompts.append(
            [render(tokenizer, agent_message(role, q, context=latent_context(earlier)), think) for q in questions]
        )
    note = latent_context([r.name for r in workers])
    final_prompts = [render(tokenizer, agent_message(final, q, answer_format, note), think) for q in questions]
    return worker_prompts, final_prompts
