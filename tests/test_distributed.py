"""Two-rank DeepSpeed ZeRO-3 on the CPU with exploration and gradient through the latents (grad_mode full).

Why two ranks: ZeRO-3 partitions every parameter across the ranks and leaves each module's `.weight` an
empty placeholder outside a forward (DeepSpeed gathers it for the forward only). Code that reads a weight
directly (the alignment map reads the embedding tables, the latent diagnostics the input embeddings) then
sees a tensor of 0 elements, and the run fails on a shape error or an empty reduction; with grad_mode full
and exploration the loss forward also differentiates through the latent recurrence under partitioned
weights. `accelerate launch --cpu --num_processes 2` silently starts ONE process, so the launch goes through
an accelerate DeepSpeed config with use_cpu (recipes/accelerate/zero3_cpu.yaml) and `--num_processes 2`, and
the test checks that two ranks really ran.
"""

import ast

import pytest

from tests.test_recipe import recipe, steps_logged

pytest.importorskip("deepspeed")


def train_two_ranks(model_dir, out, *extra):
    launcher = ("accelerate", "launch", "--config_file", "recipes/accelerate/zero3_cpu.yaml", "--num_processes", "2",
                "--main_process_port", "29533")  # fmt: skip
    return recipe(model_dir, out, "--max_steps", "2", "--save_steps", "2", "--grad_mode", "full",
                  "--latent_noise_std", "0.5", "--logging_steps", "1", *extra, launcher=launcher)  # fmt: skip


@pytest.mark.distributed
@pytest.mark.parametrize("checkpointing", ["false", "true"])  # true: the loss forward runs un-checkpointed too
def test_two_rank_zero3_with_exploration_and_full_gradient(model_dir, tmp_path, checkpointing):
    done = train_two_ranks(model_dir, tmp_path, "--gradient_checkpointing", checkpointing)
    assert done.returncode == 0, done.stderr[-3000:]
    assert steps_logged(tmp_path) == [1, 2]
    # Two ranks really ran: HF counts samples over every process (2 steps x 4 rows x 2 ranks).
    summary = ast.literal_eval(next(line for line in done.stdout.splitlines() if "train_runtime" in line))
    samples = float(summary["train_samples_per_second"]) * float(summary["train_runtime"])
    assert samples == pytest.approx(16, rel=0.02)
