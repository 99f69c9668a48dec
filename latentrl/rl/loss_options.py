"""TRL 1.16's GRPO loss options with latent actions: which work, which are refused, and why.

With exploration on (`latent_noise_std > 0` and `latent_steps > 0`) the latent inputs are sampled actions.
`LatentGRPOTrainer._get_per_token_logps_and_entropies` adds their log-ratio, log N(e; mu_theta) - log N(e;
mu_rollout), to the FIRST completion token's log-prob, so TRL's loss sees one joint action (latents + first
token) in column 0 and token actions after it. An option that treats column 0 like any other token is
therefore correct for the latent actions too. Two options would not be, and the trainer adapts them: the entropy
filter always keeps column 0 (`get_high_entropy_mask`), and at sequence level the latent term is multiplied by
the completion length, so GSPO's mean over tokens counts it at full weight (`latent_weight`). What stays wrong
is refused here, before any model loads (`LatentGRPOConfig.__post_init__`). Without exploration there are no
latent actions and every option below acts on tokens only, as in TRL.

`VERDICTS` is the table, one entry per option that acts on the per-token log-prob or ratio in TRL's
`_compute_loss` (tests/test_loss_options.py proves each "works" entry: a finite loss and a nonzero gradient
reaching the latent log-ratio; and shows what goes wrong for each "refused" one).
"""

from __future__ import annotations

from typing import Any

WORKS, REFUSED = "works", "refused with exploration"

VERDICTS: dict[str, tuple[str, str]] = {
    "loss_type=grpo": (WORKS, "column 0's joint ratio is clipped and averaged over the row like any token"),
    "loss_type=dr_grpo": (WORKS, "as grpo, normalized by max_completion_length"),
    "loss_type=dapo": (WORKS, "as grpo, normalized by the batch's active tokens (the default)"),
    "loss_type=bnpo": (WORKS, "as grpo, normalized by the local batch's active tokens"),
    "loss_type=cispo": (WORKS, "the clipped ratio is detached; the gradient is column 0's log-prob's, latents in"),
    "loss_type=sapo": (WORKS, "the soft gate is a smooth function of column 0's joint ratio"),
    "loss_type=luspo": (WORKS, "grpo summed per row; at sequence level (its intended one) as sequence below"),
    "loss_type=vespo": (
        WORKS,
        "its sequence weight SUMS the log-ratios (latent term at full weight); gradient through column 0's log-prob",
    ),
    "importance_sampling_level=token": (WORKS, "the per-token ratio: column 0 carries the latent term at full weight"),
    "importance_sampling_level=sequence": (
        WORKS,
        "GSPO averages the log-ratio over the completion; the latent term is scaled by the completion length in "
        "column 0, so it enters the sequence ratio at full weight",
    ),
    "importance_sampling_level=sequence with beta>0": (
        REFUSED,
        "the KL to the reference reads the same column 0, where the latent term is scaled by the completion length",
    ),
    "importance_sampling_level=sequence with rollout_is_cap": (
        REFUSED,
        "the truncated IS weight of column 0 reads its log-prob, where the latent term is scaled by the length",
    ),
    "top_entropy_quantile<1": (
        WORKS,
        "the entropy filter drops low-entropy tokens but always keeps column 0, which carries the latent term",
    ),
    "rollout_is_cap (truncated IS)": (
        WORKS,
        "TRL's per-token weight min(exp(old - sampling), cap); column 0's includes the latent log-density mismatch",
    ),
    "epsilon / epsilon_high": (WORKS, "clip range of column 0's joint ratio, as of every token's"),
    "delta": (WORKS, "upper bound on column 0's joint ratio, as on every token's"),
    "off_policy_mask_threshold": (
        WORKS,
        "drops or keeps a whole row (latents with it); the latent term counts 1/length in its mean-KL test",
    ),
    "num_iterations>1 / steps_per_generation": (
        WORKS,
        "old log-probs are computed with the rollout state; later passes recompute the latents under the new policy "
        "(column 0's ratio sums every latent dimension, so the clip stops the latent actions first)",
    ),
    "beta>0, use_bias_correction_kl": (
        WORKS,
        "the reference (adapters off) gets its own latent log-ratio in column 0: the KL sees the latent actions",
    ),
    "mask_truncated_completions": (WORKS, "drops a whole trajectory, its latent actions with it"),
    "entropy_coef (entropy bonus)": (WORKS, "token entropies only; the exploration noise has a fixed density"),
}


def exploring(args: Any) -> bool:
    """Whether the recipe samples latent actions (and so adds their log-ratio to column 0)."""
    return bool(args.latent_noise_std and args.latent_steps)


def loss_option_problems(args: Any) -> list[str]:
    """One line per loss option that is invalid or would silently distort the latent actions' term: each names
    the option and what to set instead. The latent ones only with exploration (else no latent actions)."""
    problems = []
    if args.rollout_is_cap is not None and args.rollout_is_cap <= 0:
        problems.append(f"rollout_is_cap must be > 0 (or unset), got {args.rollout_is_cap}")
    if not exploring(args) or args.importance_sampling_level != "sequence":
        return problems
    if args.beta:
        problems.append(
            f"importance_sampling_level=sequence with beta={args.beta}: the latent term in column 0 is scaled by the "
            "completion length for the sequence ratio, and the KL would read it scaled: use beta=0 or "
            "importance_sampling_level=token (or latent_noise_std=0)"
        )
    if args.rollout_is_cap is not None:
        problems.append(
            "importance_sampling_level=sequence with rollout_is_cap: column 0's truncated IS weight would read the "
            "length-scaled latent term: unset rollout_is_cap or use importance_sampling_level=token"
        )
    return problems
