"""Rendering an agent's turn through the tokenizer's own chat template (no model-family assumptions)."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from latentrl.mas.promptset import PromptSet, shipped
from latentrl.mas.roles import topology
from latentrl.mas.semantics import Layout


def text_context(messages: list[tuple[str, str]]) -> str | None:
    """TextMAS: the earlier agents' outputs, labelled by role."""
    if not messages:
        return None
    body = "\n\n".join(f"[{name}]\n{text.strip()}" for name, text in messages)
    return f"Outputs of the other agents:\n\n{body}"


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def check_think(tokenizer: PreTrainedTokenizerBase, think: bool | None) -> None:
    """A thinking switch needs a chat template that reads `enable_thinking` (Qwen3's do)."""
    if think is not None and "enable_thinking" not in (tokenizer.chat_template or ""):
        raise ValueError("--think needs a chat template that reads enable_thinking (as Qwen3's); this model's does not")


def render(
    tokenizer: PreTrainedTokenizerBase, message: str, think: bool | None = None, system: str | None = None
) -> list[int]:
    """Token ids of one user turn (after a system turn, if given) plus the assistant header, as the chat
    template writes them.

    `think` is passed to the template as `enable_thinking`; None leaves the template's own default."""
    check_think(tokenizer, think)
    extra = {} if think is None else {"enable_thinking": think}
    turns = [{"role": "system", "content": system}] if system else []
    turns.append({"role": "user", "content": message})
    ids = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=False, **extra)
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
    prompts: PromptSet | None = None,
    layout: Layout | None = None,
    memory_questions: list[str] | None = None,
) -> tuple[list[list[list[int]]], list[list[int]]]:
    """LatentMAS prompt ids: workers[agent][question] and final[question]; shared by inference and training.

    `think`: as in `render`. `prompts`: the prompt set (default: the shipped `default`). `layout`: how the
    engine runs the topology (`semantics.layout`; default: the topology itself); it says whose memory each
    agent reads (the set's note names them), and when the workers do not run their prompts are left out.
    `memory_questions`: what the workers read instead of `questions` (the `shuffled` control's donors)."""
    prompts = prompts or shipped("default")
    layout = layout or Layout(topology_name, True)
    *workers, final = topology(topology_name)
    read_by_final = workers if layout.final_note else []
    if not layout.workers_run:
        workers = []

    def ids(role: str, q: str, read: list[str]) -> list[int]:
        message = prompts.message(f"{topology_name}/{role}", q, prompts.note(read), answer_format)
        return render(tokenizer, message, think, prompts.system)

    chained = layout.topology == "sequential"  # each worker reads the earlier ones; parallel experts read none
    worker_questions = memory_questions or questions
    worker_prompts = [
        [ids(r, q, workers[:k] if chained else []) for q in worker_questions] for k, r in enumerate(workers)
    ]
    return worker_prompts, [ids(final, q, read_by_final) for q in questions]
