"""TRL's GRPOTrainer with the LatentMAS pipeline as its rollout and an exact latent log-prob recompute.

The rollout (`latent_rollout`, TRL's `rollout_func`) runs the full pipeline: the workers' prompts and m
latent steps build the KV memory, the final agent samples text. TRL sees each trajectory as one prompt
row ([worker 1][<latent> x m]...[final prompt], unpadded) plus the completion; what the row alone does
not say (agent boundaries, the latent inputs fed, the exploration density, the policy's step) travels
beside it as a `RolloutState` in TRL's batch dict, shuffled and split with the rows.

The policy log-prob is defined by overriding `_get_per_token_logps_and_entropies`, TRL's one private
hook for it; `_generate`, `_generate_and_score_completions` and `_compute_loss` are wrapped only to hand
that hook the batch's state (pinned: trl==1.16.0; tests/test_rl.py fails loudly if these change). It
rebuilds the batch layout of the rows, refills the latent columns with the recurrence
(`latent.recompute`; with gradient through the latent steps when grad_mode='full') and runs one
teacher-forced forward through TRL's fused log-prob head. The recurrence is deterministic, so these
log-probs equal the rollout's sampling log-probs, and old/new ratios, the KL to the reference (adapters
disabled) and every TRL loss type work unchanged. In grad_mode 'none', the loss forward at the same
optimizer step as its rollout feeds the rollout's recorded latents instead (the same values; it skips
the recurrence's forwards). Without exploration noise, the rows of one prompt (its generations) also
share one forward of the prompt in the loss: its KV is computed once, with gradient, and branched per
completion (`shared_prompt_forward`; same log-probs, same gradient, a fraction of the compute).

Rollout/trainer mismatch: the loss forward at the rollout's own policy step logs how far its log-probs are
from the rollout's sampling log-probs (`rollout/*` metrics, `log_mismatch`); `rollout_is_cap` switches on
TRL's truncated importance-sampling correction (its vLLM one) for this HF rollout (`trl_is_correction`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields

import torch
from accelerate.utils import is_peft_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from latentrl.latent import build_trajectory, fill_latents, get_alignment, recompute
from latentrl.latent.controls import REPLACES_LATENTS, Substitute, filler_embedding
from latentrl.latent.diagnostics import latent_stats
from latentrl.latent.hooks import cache_keyword, decoder_states, embed
from latentrl.latent.masks import select_rows, slice_masks
from latentrl.latent.memory import gaussian_log_kernel, new_cache
from latentrl.latent.trajectory import Trajectory, pack_row, split_row
from latentrl.mas.decode import Sampling, decode
from latentrl.mas.pipeline import MemoryInputs, latent_memory
from latentrl.mas.prompts import check_think
from latentrl.models import eos_token_ids, pad_token_id
from latentrl.rl.config import LatentGRPOConfig
from latentrl.rl.data import with_donors
from latentrl.tasks import get_task


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
class RolloutState:
    """What the loss forward needs of each rollout, batch first. It rides in TRL's own batch dict (under
    `latent_*` keys), which TRL shuffles and splits with the rows, so every row keeps its own state: the
    generations of one prompt have identical prompt rows but their own latents and noise."""

    segments: torch.Tensor  # (B, agents) long: token count of each worker's prompt, then the final agent's
    step: torch.Tensor  # (B,) long: the optimizer step of the policy that made the rollout
    latents: torch.Tensor | None = None  # (B, n_latent, d) the latent inputs fed, noise included (m > 0)
    logq: torch.Tensor | None = None  # (B,) fp64 exploration log-density under the rollout's means, up to its constant

    KEY = "latent_state"  # the rollout_func field that carries it into the trainer

    def to_inputs(self) -> dict[str, torch.Tensor]:
        return {f"latent_{f.name}": getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_inputs(cls, inputs: dict) -> RolloutState:
        return cls(**{f.name: inputs.get(f"latent_{f.name}") for f in fields(cls)})

    def rows(self, index: slice | torch.Tensor) -> RolloutState:
        return RolloutState(*(None if t is None else t[index] for t in (getattr(self, f.name) for f in fields(self))))


def distinct_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, inverse): the first row index of each distinct row of the 2-D `t`, and each row's index
    into `first`, so that t[first][inverse] == t."""
    _, inverse = torch.unique(t, dim=0, return_inverse=True)
    rows = torch.arange(len(t), device=t.device)
    first = torch.full((int(inverse.max()) + 1,), len(t), device=t.device).scatter_reduce(0, inverse, rows, "amin")
    return first, inverse


class LatentGRPOTrainer(GRPOTrainer):
    args: LatentGRPOConfig

    def __init__(self, *args, answer_format: str, **kwargs):
        self._state: RolloutState | None = None  # the rollout state of the batch being scored, during that call only
        self._memory_prompts: list[str] | None = None  # the batch's `memory_prompt` column, during its rollout only
        # The last log-prob forward's token-only log-probs and latent log-ratio (detached), for `log_mismatch`.
        self._scored: tuple[torch.Tensor, torch.Tensor | None] | None = None
        kwargs.setdefault("rollout_func", latent_rollout)
        super().__init__(*args, **kwargs)
        a = self.args
        if a.memory_control == "shuffled":  # each row carries its donor's prompt (TRL's dataloader reads it later)
            self.train_dataset = with_donors(self.train_dataset, a.seed)
        self.answer_format = a.prompt_set.answer_format(get_task(a.task).family, answer_format)
        self.m = a.latent_steps if a.layout.workers_run else 0  # latent columns per worker in this run's rows
        self.layout = a.layout  # the engine's topology, whether workers run
        tok = self.processing_class
        self.latent_id = latent_token_id(tok)
        self.stop_ids = eos_token_ids(causal_lm(self.accelerator.unwrap_model(self.model)), tok)
        self.pad_id = pad_token_id(tok, self.stop_ids)
        check_think(tok, a.enable_thinking)  # before any rollout: the template must read enable_thinking
        # TRL's vLLM importance-sampling correction, per token, truncated at the cap (see `trl_is_correction`).
        self.vllm_importance_sampling_correction = a.rollout_is_cap is not None
        self.vllm_importance_sampling_mode = "token_truncate"
        self.vllm_importance_sampling_clip_min, self.vllm_importance_sampling_clip_max = None, a.rollout_is_cap

    def alignment(self, lm: PreTrainedModel):
        return get_alignment(lm, self.args.align, self.args.align_lambda)

    @contextmanager
    def scoring(self, state: RolloutState | None) -> Iterator[None]:
        """Log-prob forwards inside this block read `state`, row-aligned with the ids they are given."""
        previous, self._state = self._state, state
        try:
            yield
        finally:
            self._state = previous

    @contextmanager
    def trl_is_correction(self, on: bool) -> Iterator[None]:
        """TRL 1.16 runs its truncated importance-sampling correction (an old-policy forward, the ratio
        min(exp(old_logp - sampling_logp), cap) per token, its `sampling/*` metrics, the ratio applied to the
        per-token loss) only where `self.use_vllm` is set, a flag that elsewhere means "generate and sync weights
        with vLLM". It is raised only around TRL's scoring after the rollout and its loss, where it gates nothing
        but the correction (`rollout_is_cap`), and lowered around the rollout itself."""
        previous, self.use_vllm = self.use_vllm, on
        try:
            yield
        finally:
            self.use_vllm = previous

    def _generate(self, prompts: list):
        with self.trl_is_correction(False):  # the rollout is ours: no vLLM weight sync
            out = super()._generate(prompts)
        self._state = out[5].pop(RolloutState.KEY)  # extra fields: kept out of the reward functions' kwargs
        return out

    def _generate_and_score_completions(self, inputs):
        # The rollout reads each row's memory prompt (the `shuffled` control's donor) from the batch itself.
        self._memory_prompts = [x["memory_prompt"] for x in inputs] if "memory_prompt" in inputs[0] else None
        try:
            # `_generate` sets the state; TRL's old/ref forwards in there read it
            with self.scoring(None), self.trl_is_correction(self.vllm_importance_sampling_correction):
                output = super()._generate_and_score_completions(inputs)
                output.update(self._state.to_inputs())
        finally:
            self._memory_prompts = None
        return output

    def _compute_loss(self, model, inputs):
        with (
            self.scoring(RolloutState.from_inputs(inputs)),
            self.trl_is_correction(self.vllm_importance_sampling_correction),
        ):
            loss = super()._compute_loss(model, inputs)
        self.log_mismatch(inputs)
        return loss

    def log_mismatch(self, inputs: dict) -> None:
        """Rollout/trainer mismatch of these rows, from the loss forward just run, when its policy is the
        rollout's (same optimizer step): that forward then IS TRL's old-policy log-prob (TRL reuses it as such
        when it computes no old log-probs), so the metric costs no forward. Mean and max over completion tokens of
        |sampling log-prob - trainer log-prob| (`rollout/token_logp_diff/*`, tokens only: column 0 without the
        latent term), and with exploration, per row, |log N(e; mu_recomputed) - log N(e; mu_rollout)|, the latent
        actions' log-density recorded by the rollout against the recompute's (`rollout/latent_logp_diff/*`)."""
        state = RolloutState.from_inputs(inputs)
        if self._scored is None or not bool((state.step == self.state.global_step).all()):
            return
        token_logps, latent_log_ratio = self._scored
        mask = inputs["completion_mask"].bool()
        parts = {"token": (inputs["sampling_per_token_logps"] - token_logps).abs()[mask]}
        if latent_log_ratio is not None:
            parts["latent"] = latent_log_ratio.abs().float()
        mode = "train" if self.model.training else "eval"
        for name, delta in parts.items():
            empty = delta.new_zeros(())
            mean, top = (delta.mean(), delta.max()) if delta.numel() else (empty, empty)
            self._metrics[mode][f"rollout/{name}_logp_diff/mean"].append(self.accelerator.gather(mean).mean().item())
            self._metrics[mode][f"rollout/{name}_logp_diff/max"].append(self.accelerator.gather(top).max().item())

    def get_high_entropy_mask(self, entropies: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
        """TRL's entropy filter (top_entropy_quantile < 1), but with exploration column 0 is always kept: it
        carries the latent actions' log-ratio, whose gradient would vanish with it whenever the first token's
        entropy is low."""
        keep = super().get_high_entropy_mask(entropies, mask, threshold)
        if self.args.exploring:
            keep[:, 0] |= mask[:, 0].bool()
        return keep

    def trajectory(self, prompt_rows: list[list[int]], state: RolloutState) -> Trajectory:
        split = [split_row(r, lengths, self.m) for r, lengths in zip(prompt_rows, state.segments.tolist())]
        workers = [[w[a] for w, _ in split] for a in range(len(split[0][0]))]
        finals = [f for _, f in split]
        offset = self.args.expert_positions == "offset"
        return build_trajectory(self.layout.topology, workers, finals, self.m, self.pad_id, self.latent_id, offset)

    def substitute(self, lm: PreTrainedModel, state: RolloutState) -> Substitute | None:
        """The memory control's latent inputs for these rows (noise: the rollout's directions; pause: the filler)."""
        control = self.args.memory_control
        if control not in REPLACES_LATENTS or not self.m:
            return None
        filler = filler_embedding(lm, self.processing_class) if control == "pause" else None
        return Substitute.from_recorded(control, state.latents, filler)

    def _reuses_latents(self, state: RolloutState) -> bool:
        """True for the loss forward (grad on) of grad_mode 'none' at the optimizer step of the rollout:
        the policy is the rollout's, so its recorded latents equal the recompute. Reference, old-policy
        and later-iteration forwards recompute."""
        a = self.args
        if not (a.reuse_rollout_latents and a.grad_mode == "none" and self.m and torch.is_grad_enabled()):
            return False
        return bool((state.step == self.state.global_step).all())

    def latent_prefix(
        self, lm: PreTrainedModel, prompt: Trajectory, state: RolloutState, grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prompt's input embeddings with its latent columns filled, and with exploration the (B,)
        fp64 log-ratio of the latent actions under this policy against the rollout's:
        log N(e; mu_theta) - log N(e; mu_rollout), which is 0 for the rollout policy itself."""
        a = self.args
        if self._reuses_latents(state):
            return fill_latents(lm, prompt, state.latents), None
        align = self.alignment(lm)
        sub = self.substitute(lm, state)
        with no_gradient_checkpointing(lm):
            if a.exploring:
                embeds, means = recompute(lm, prompt, align, grad=grad, latent_inputs=state.latents)
                log_ratio = gaussian_log_kernel(state.latents, means, a.latent_noise_std) - state.logq.to(means.device)
                return embeds, log_ratio
            if not self._shares_prompts(False):
                return recompute(lm, prompt, align, grad=grad, substitute=sub).embeds, None
            # Without noise, identical prompt rows (a prompt's generations) have identical latents: run once.
            first, inverse = distinct_rows(torch.cat([prompt.input_ids, prompt.attention_mask], 1))
            sub = None if sub is None else sub.rows(first)
            embeds = recompute(lm, prompt.rows(first), align, grad=grad, substitute=sub).embeds
            return embeds[inverse.to(lm.device)], None

    def _shares_prompts(self, compute_aux_loss: bool) -> bool:
        """Whether the loss forward may run a prompt once for all its rows: identical prompt rows have
        identical prefixes (no exploration noise, no noise control); MoE auxiliary losses want the whole forward."""
        a = self.args
        random_latents = a.exploring or (a.memory_control == "noise" and self.m)
        return a.share_worker_rollouts and not random_latents and not compute_aux_loss

    def shared_prompt_forward(self, model, lm, full: Trajectory, prefix, comp_ids, comp_mask):
        """TRL's fused log-prob forward of rows whose prompts repeat, with each distinct prompt run once.

        The distinct prompts' first P-1 columns run through the decoder with gradient into a KV cache,
        which is branched to every row (index_select: the gradients of a prompt's rows add up in its
        one copy); then each row's last prompt column and completion run on top, scored by the fused
        head with pre-shifted labels. None when no prompt repeats (the one-pass forward is as cheap)."""
        P, C = prefix.shape[1], comp_ids.shape[1]
        first, inverse = distinct_rows(torch.cat([full.input_ids[:, :P], full.attention_mask[:, :P]], 1))
        if len(first) == len(inverse) or P < 2:
            return None
        attn, dev = full.attention(lm), prefix.device
        first, inverse = first.to(dev), inverse.to(dev)
        cache = new_cache()  # grad is on: a plain DynamicCache
        # Both forwards run a cache, which gradient checkpointing would drop (HF turns caching off under it).
        with self.accelerator.autocast(), no_gradient_checkpointing(lm):
            decoder_states(lm, prefix[first, : P - 1], slice_masks(select_rows(attn, first), slice(0, P - 1),
                           slice(0, P - 1)), full.position_ids[first, : P - 1].to(dev), cache)  # fmt: skip
            branched = new_cache()
            for i, layer in enumerate(cache.layers):
                branched.update(layer.keys[inverse], layer.values[inverse], i)
            embeds = torch.cat([prefix[:, P - 1 :], embed(lm, comp_ids[:, :-1])], 1)
            cols = slice(P - 1, P - 1 + C)
            return model(
                inputs_embeds=embeds,
                attention_mask=slice_masks(attn, cols, slice(0, P - 1 + C)),
                position_ids=full.position_ids[:, cols].to(dev),
                shift_labels=comp_ids.masked_fill(comp_mask == 0, -100),
                fused_lm_head=True,
                **{cache_keyword(lm.get_decoder()): branched},
            )

    def latent_weight(self, comp_mask: torch.Tensor) -> torch.Tensor:
        """(B,) factor on the latent log-ratio in column 0. importance_sampling_level=sequence (GSPO) averages the
        log-ratio over a row's completion tokens: the latent term is multiplied by that count so it enters the
        sequence ratio at full weight, as at token level (1). The KL to the reference reads the same column, so
        with beta > 0 sequence level is refused (loss_options.py)."""
        if self.importance_sampling_level == "sequence":
            return comp_mask.sum(1).to(torch.float64)
        return torch.ones(len(comp_mask), dtype=torch.float64, device=comp_mask.device)

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
        state = self._state
        if state is None or len(state.step) != len(input_ids):
            raise RuntimeError("latent log-probs need the rollout state of exactly these rows (see RolloutState)")
        lm = causal_lm(self.accelerator.unwrap_model(model))
        grad = self.args.grad_mode == "full" and torch.is_grad_enabled()
        P = input_ids.size(1) - logits_to_keep
        batch_size = batch_size or input_ids.size(0)
        logps, token_logps, latent_ratios, entropies, aux = [], [], [], [], []
        for s in range(0, input_ids.size(0), batch_size):
            ids, mask = input_ids[s : s + batch_size], attention_mask[s : s + batch_size]
            rows_state = state.rows(slice(s, s + batch_size))
            prompt = self.trajectory([r[:P][m[:P].bool()].tolist() for r, m in zip(ids, mask)], rows_state)
            prefix, latent_log_ratio = self.latent_prefix(lm, prompt, rows_state, grad)
            latent_ratios.append(latent_log_ratio)
            comp_ids, comp_mask = ids[:, P:], mask[:, P:]
            full = prompt.extend(comp_ids, comp_mask)
            out = None
            if self._shares_prompts(compute_aux_loss):
                out = self.shared_prompt_forward(model, lm, full, prefix, comp_ids, comp_mask)
            if out is None:
                embeds = torch.cat([prefix, embed(lm, comp_ids)], 1)
                labels = full.input_ids.masked_fill(full.attention_mask == 0, -100)
                labels[:, :-logits_to_keep] = -100
                extra = {"output_router_logits": True} if compute_aux_loss else {}
                # As in the latent recurrence: with gradient through the latents (grad_mode full) a checkpointed
                # forward here, after the un-checkpointed recurrence, accumulates each LoRA weight's gradient
                # twice in one backward, which ZeRO-3 refuses (a parameter twice in its reduction bucket).
                with self.accelerator.autocast(), no_gradient_checkpointing(lm) if grad else nullcontext():
                    out = model(
                        inputs_embeds=embeds,
                        attention_mask=full.attention(lm),
                        position_ids=full.position_ids,
                        labels=labels,
                        fused_lm_head=True,
                        **extra,
                    )
            row_logps = out.log_probs[:, -logits_to_keep:]
            token_logps.append(row_logps.detach())
            if latent_log_ratio is not None:  # the latent actions join the first completion token's log-prob
                latent_term = latent_log_ratio * self.latent_weight(comp_mask)
                first = row_logps[:, :1] + latent_term[:, None].to(row_logps.dtype)
                row_logps = torch.cat([first, row_logps[:, 1:]], 1)
            logps.append(row_logps)
            if compute_entropy:
                entropies.append(out.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                aux.append(out.aux_loss)
        latent = None if latent_ratios[0] is None else torch.cat(latent_ratios).detach()
        self._scored = torch.cat(token_logps), latent
        entropy = torch.cat(entropies) if compute_entropy else None
        return torch.cat(logps), entropy, (torch.stack(aux).mean() if compute_aux_loss else None)


def latent_diagnostics(lm: PreTrainedModel, latents: list[torch.Tensor], rows: int) -> tuple[dict, list, list]:
    """Per worker: mean latent norm and mean cosine to the nearest input embedding (drift off the token manifold),
    as batch metrics; and per row the same over all its latents (NaN without latents), for the completions table.
    One `latent_stats` pass per worker serves both (every worker has m latents, so the mean of means is exact)."""
    metrics, norms, cosines = {}, [], []
    for k, lat in enumerate(latents):
        if lat.shape[1]:
            norm, cos = latent_stats(lm, lat)
            metrics[f"latent/agent{k}_norm"] = norm.mean().item()
            metrics[f"latent/agent{k}_nearest_cos"] = cos.mean().item()
            norms.append(norm)
            cosines.append(cos)
    if not norms:
        return metrics, [float("nan")] * rows, [float("nan")] * rows
    return metrics, torch.stack(norms).mean(0).tolist(), torch.stack(cosines).mean(0).tolist()


def latent_rollout(prompts: list[str], trainer: LatentGRPOTrainer) -> dict[str, list]:
    """TRL rollout_func: one LatentMAS trajectory per prompt (TRL's sampler already repeats each prompt
    num_generations times); returns unpadded prompt rows, completions, sampling log-probs and the rows'
    `RolloutState`. The memory is the engine's (`mas.pipeline.latent_memory`): without exploration noise
    the copies of a prompt share one run of its workers and branch at the final agent's decode."""
    args, tok, m = trainer.args, trainer.processing_class, trainer.m
    noise = args.latent_noise_std if args.exploring else 0.0
    seeds = torch.randint(2**62, (len(prompts),)).tolist() if args.memory_control == "noise" else None
    inputs = MemoryInputs(trainer._memory_prompts, seeds)
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
        batch = latent_memory(
            lm, tok, args, prompts, trainer.answer_format, trainer.pad_id, inputs, noise,
            reserve=args.max_completion_length, share=args.share_worker_rollouts,
        )  # fmt: skip
        mem = batch.memory
        decoded = decode(mem.memory, mem.h_last, trainer.stop_ids, sampling, logprobs=True)
        metrics, norms, cosines = latent_diagnostics(lm, mem.latents, len(prompts))
        for key, value in metrics.items():
            trainer._metrics["train"][key].append(value)
        trainer._metrics["train"]["latent/memory_length"].append(mem.memory_length.float().mean().item())
        # Per-sample columns of TRL's completions table (log_completions), beside prompt, completion and rewards.
        columns = {"latent_m": [m] * len(prompts), "memory_length": mem.memory_length.tolist(),
                   "latent_norm": norms, "latent_nearest_cos": cosines}  # fmt: skip
        for column, values in columns.items():
            trainer._log_completion_extra(column, values)
        lm.train(was_training)
    dev, n, workers, finals = mem.memory_length.device, len(prompts), batch.worker_prompts, batch.final_prompts
    state = RolloutState(
        segments=torch.tensor([[len(w[q]) for w in workers] + [len(finals[q])] for q in range(n)], device=dev),
        step=torch.full((n,), trainer.state.global_step, device=dev),
        latents=torch.cat(mem.latents, 1) if m else None,
        logq=mem.logdensity if noise else None,
    )
    return {
        "prompt_ids": [pack_row([w[q] for w in workers], finals[q], m, trainer.latent_id) for q in range(n)],
        "completion_ids": [d.tokens for d in decoded],
        "logprobs": [d.logprobs for d in decoded],
        RolloutState.KEY: state,
    }
