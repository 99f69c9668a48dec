"""TRL's GRPOTrainer with the LatentMAS pipeline as its rollout and an exact latent log-prob recompute.

The rollout (`latent_rollout`, TRL's `rollout_func`) runs the full pipeline: the workers' prompts and m
latent steps build the KV memory, the final agent samples text. TRL sees each trajectory as one prompt
row ([worker 1][<latent> x m]...[final prompt], unpadded) plus the completion.

The policy log-prob is defined by overriding `_get_per_token_logps_and_entropies`, TRL's one private
hook for it (pinned: trl==1.16.0; tests/test_rl.py fails loudly if its signature changes). It rebuilds
the batch layout of the rows, refills the latent columns with the recurrence (`latent.recompute`; with
gradient through the latent steps when grad_mode='full') and runs one teacher-forced forward through
TRL's fused log-prob head. The recurrence is deterministic, so these log-probs equal the rollout's
sampling log-probs, and old/new ratios, the KL to the reference (adapters disabled) and every TRL loss
type work unchanged. In grad_mode 'none', the loss forward at the same optimizer step as its rollout
feeds the rollout's recorded latents instead (the same values; it skips the recurrence's forwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from accelerate.utils import is_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from latentrl.latent import build_memory, build_trajectory, fill_latents, get_alignment, recompute
from latentrl.latent.diagnostics import latent_stats
from latentrl.latent.memory import gaussian_logdensity
from latentrl.latent.trajectory import Trajectory
from latentrl.mas.decode import Sampling, decode
from latentrl.mas.prompts import latent_prompts
from latentrl.models import eos_token_ids
from latentrl.rl.config import LatentGRPOConfig


def causal_lm(model: torch.nn.Module) -> PreTrainedModel:
    """The bare causal LM inside DDP / DeepSpeed / PEFT wrappers (LoRA layers stay live inside it)."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if is_peft_model(inner) else inner


@contextmanager
def no_gradient_checkpointing(module: torch.nn.Module) -> Iterator[None]:
    """HF drops the KV cache inside checkpointed layers when grad is on, which silently corrupts the
    latent recurrence; it needs the cache, so checkpointing is off while it runs."""
    flagged = [m for m in module.modules() if getattr(m, "gradient_checkpointing", False) is True]
    for m in flagged:
        m.gradient_checkpointing = False
    try:
        yield
    finally:
        for m in flagged:
            m.gradient_checkpointing = True


def latent_token_id(tok: PreTrainedTokenizerBase) -> int:
    """An id to mark latent columns in prompt rows. Its embedding is never read and the latent columns are
    rebuilt from the recorded segments, so any id works; a spare reserved/special token keeps logged rows
    readable. Falls back to an added token that no chat turn uses, then to unk/pad."""
    used = {tok.eos_token_id, tok.bos_token_id, tok.pad_token_id, tok.unk_token_id}
    rendered = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=True)
    used |= set(rendered if isinstance(rendered, list) else rendered["input_ids"])
    added = {i: t.content for i, t in tok.added_tokens_decoder.items() if i not in used}
    special = {i: t for t, i in zip(tok.all_special_tokens, tok.all_special_ids) if i not in used}
    for pool in (special, added):
        reserved = [i for i, t in pool.items() if "reserved" in t or "unused" in t]
        if reserved or pool:
            return min(reserved or pool)
    return tok.unk_token_id if tok.unk_token_id is not None else tok.pad_token_id


@dataclass
class Segments:
    """How one prompt row splits into agents: workers' prompt ids and the final agent's."""

    workers: list[list[int]]
    final: list[int]
    latents: torch.Tensor | None = None  # (n_latent, d) the latent inputs fed (noisy when exploring), on CPU
    step: int = -1  # the optimizer step whose policy made the rollout


def extend(traj: Trajectory, ids: torch.Tensor, mask: torch.Tensor) -> Trajectory:
    """The trajectory with completion columns appended (shared: they see everything before them)."""
    last = traj.position_ids[:, -1:]
    pos = last + mask.cumsum(1)
    dev = ids.device
    return Trajectory(
        torch.cat([traj.input_ids.to(dev), ids], 1),
        torch.cat([traj.attention_mask.to(dev), mask], 1),
        torch.cat([traj.position_ids.to(dev), pos.to(dev)], 1),
        torch.cat([traj.latent_mask.to(dev), torch.zeros_like(mask, dtype=torch.bool)], 1),
        torch.cat([traj.branch.to(dev), torch.zeros_like(ids)], 1),
    )


class LatentGRPOTrainer(GRPOTrainer):
    args: LatentGRPOConfig

    def __init__(self, *args, answer_format: str, **kwargs):
        self.answer_format = answer_format
        self._segments: dict[tuple[int, ...], Segments] = {}
        kwargs.setdefault("rollout_func", latent_rollout)
        super().__init__(*args, **kwargs)
        tok = self.processing_class
        self.latent_id = latent_token_id(tok)
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        self.stop_ids = eos_token_ids(causal_lm(self.accelerator.unwrap_model(self.model)), tok)

    def alignment(self, lm: PreTrainedModel):
        return get_alignment(lm, self.args.align, self.args.align_lambda)

    def remember(self, row: list[int], segments: Segments) -> None:
        """Record how a rollout's prompt row splits, for the recompute. Bounded: old rows are dropped."""
        if len(self._segments) > 16 * self.args.generation_batch_size:
            self._segments.clear()
        self._segments[tuple(row)] = segments

    def trajectory(self, prompt_rows: list[list[int]]) -> Trajectory:
        segs = [self._segments[tuple(r)] for r in prompt_rows]
        workers = [[s.workers[a] for s in segs] for a in range(len(segs[0].workers))]
        return build_trajectory(
            self.args.topology, workers, [s.final for s in segs], self.args.latent_steps, self.pad_id, self.latent_id
        )

    def _recorded_latents(self, rows: list[list[int]], device: torch.device) -> torch.Tensor:
        return torch.stack([self._segments[tuple(r)].latents for r in rows]).to(device)

    def _reuses_latents(self, rows: list[list[int]]) -> bool:
        """True for the loss forward (grad on) of grad_mode 'none' at the optimizer step of the rollout:
        the policy is the rollout's, so its recorded latents equal the recompute. Reference, old-policy
        and later-iteration forwards recompute."""
        a = self.args
        if not (a.reuse_rollout_latents and a.grad_mode == "none" and a.latent_steps and torch.is_grad_enabled()):
            return False
        return all(self._segments[tuple(r)].step == self.state.global_step for r in rows)

    def _get_per_token_logps_and_entropies(
        self,
        model,
        input_ids,
        attention_mask,
        logits_to_keep,
        batch_size=None,
        compute_entropy=False,
        compute_aux_loss=False,
        **multimodal,
    ):
        lm = causal_lm(self.accelerator.unwrap_model(model))
        align = self.alignment(lm)
        grad = self.args.grad_mode == "full" and torch.is_grad_enabled()
        P = input_ids.size(1) - logits_to_keep
        batch_size = batch_size or input_ids.size(0)
        logps, entropies = [], []
        for s in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[s : s + batch_size], attention_mask[s : s + batch_size]
            rows = [r[:P][m[:P].bool()].tolist() for r, m in zip(ids, mask)]
            prompt = self.trajectory(rows)
            dev = lm.get_input_embeddings().weight.device
            noisy = self._recorded_latents(rows, dev) if self.args.latent_noise_std and self.args.latent_steps else None
            if self._reuses_latents(rows):  # grad_mode none only, so never with exploration noise
                prefix = fill_latents(lm, prompt, self._recorded_latents(rows, dev))
            else:
                with no_gradient_checkpointing(lm):
                    prefix, means = recompute(lm, prompt, align, grad=grad, latent_inputs=noisy)
            comp_ids, comp_mask = ids[:, P:], mask[:, P:]
            full = extend(prompt, comp_ids, comp_mask)
            embeds = torch.cat([prefix, lm.get_input_embeddings()(comp_ids)], 1)
            labels = full.input_ids.masked_fill(full.attention_mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                out = model(
                    inputs_embeds=embeds,
                    attention_mask=full.attention(lm),
                    position_ids=full.position_ids,
                    labels=labels,
                    fused_lm_head=True,
                )
            row_logps = out.log_probs[:, -logits_to_keep:]
            if noisy is not None:  # the latent actions' log-density joins the first completion token's
                dens = gaussian_logdensity(noisy, means, self.args.latent_noise_std)
                row_logps = torch.cat([row_logps[:, :1] + dens[:, None].to(row_logps.dtype), row_logps[:, 1:]], 1)
            logps.append(row_logps)
            if compute_entropy:
                entropies.append(out.entropy[:, -logits_to_keep:])
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None


def latent_diagnostics(lm: PreTrainedModel, latents: list[torch.Tensor]) -> dict[str, float]:
    """Per worker: mean latent norm and mean cosine to the nearest input embedding (drift off the token manifold)."""
    out = {}
    for k, lat in enumerate(latents):
        if lat.shape[1]:
            norm, cos = latent_stats(lm, lat)
            out[f"latent/agent{k}_norm"], out[f"latent/agent{k}_nearest_cos"] = norm.mean().item(), cos.mean().item()
    return out


def latent_rollout(prompts: list[str], trainer: LatentGRPOTrainer) -> dict[str, list]:
    """TRL rollout_func: one LatentMAS trajectory per prompt (TRL's sampler already repeats each prompt
    num_generations times); returns unpadded prompt rows, completions and sampling log-probs."""
    args, tok = trainer.args, trainer.processing_class
    workers, finals = latent_prompts(tok, args.topology, prompts, trainer.answer_format)
    sampling = Sampling(max_new_tokens=args.max_completion_length, temperature=args.temperature, top_p=args.top_p)
    with (
        unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=args.ds3_gather_for_generation
        ) as unwrapped,
        torch.no_grad(),
        trainer.accelerator.autocast(),  # the precision of the training forward
    ):
        lm = causal_lm(unwrapped)
        was_training = lm.training
        lm.eval()
        noise = args.latent_noise_std
        mem = build_memory(
            lm, args.topology, workers, finals, args.latent_steps, trainer.alignment(lm), trainer.pad_id, noise,
            reserve=args.max_completion_length,
        )  # fmt: skip
        decoded = decode(mem.memory, mem.h_last, trainer.stop_ids, sampling, logprobs=True)
        if noise and args.latent_steps:  # the latent actions' log-density, on the first token (as the recompute)
            for d, dens in zip(decoded, mem.logdensity.tolist()):
                d.logprobs[0] += dens
        latents = torch.cat(mem.latents, 1).cpu() if args.latent_steps else None
        for key, value in latent_diagnostics(lm, mem.latents).items():
            trainer._metrics["train"][key].append(value)
        trainer._metrics["train"]["latent/memory_length"].append(mem.memory_length.float().mean().item())
        lm.train(was_training)
    rows, step = [], trainer.state.global_step
    for q in range(len(prompts)):
        segs = Segments([w[q] for w in workers], finals[q], None if latents is None else latents[q], step)
        row = [t for w in segs.workers for t in w + [trainer.latent_id] * args.latent_steps] + segs.final
        trainer.remember(row, segs)
        rows.append(row)
    return {
        "prompt_ids": rows,
        "completion_ids": [d.tokens for d in decoded],
        "logprobs": [d.logprobs for d in decoded],
    }
