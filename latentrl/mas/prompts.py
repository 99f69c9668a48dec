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


def render(tokenizer: PreTrainedTokenizerBase, message: str) -> list[int]:
    """Token ids of one user turn plus the assistant header, as the chat template writes them."""
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return list(ids)


def latent_prompts(
    tokenizer: PreTrainedTokenizerBase, topology_name: str, questions: list[str], answer_format: str
) -> tuple[list[list[list[int]]], list[list[int]]]:
    """LatentMAS prompt ids: workers[agent][question] and final[question]; shared by inference and training."""
    *workers, final = topology(topology_name)
    hierarchical = topology_name == "hierarchical"
    worker_prompts = []
    for k, role in enumerate(workers):
        earlier = [] if hierarchical else [r.name for r in workers[:k]]
        worker_prompts.append(
            [render(tokenizer, agent_message(role, q, context=latent_context(earlier))) for q in questions]
        )
    note = latent_context([r.name for r in workers])
    final_prompts = [render(tokenizer, agent_message(final, q, answer_format, note)) for q in questions]
    return worker_prompts, final_prompts
