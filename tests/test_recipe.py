"""recipes/grpo.py end to end on a tiny model: accelerate launch, bad config, resume from a checkpoint."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # every test here launches another process

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def recipe(model_dir, out, *extra, launcher=("accelerate", "launch", "--num_processes", "1"), wandb=False):
    cmd = [str(BIN / launcher[0]), *launcher[1:], "recipes/grpo.py", "--config", "recipes/configs/arithmetic_cpu.yaml",
           "--model_name", model_dir, "--output_dir", str(out), "--max_completion_length", "4", "--train_size", "64",
           *([] if wandb else ["--report_to", "none"]), *extra]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    if wandb:  # a fresh machine: no W&B account, no key, no netrc, no mode set
        env = {k: v for k, v in env.items() if not k.startswith("WANDB_")} | {"HOME": str(out / "home")}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


def steps_logged(out: Path) -> list[int]:
    state = json.loads(max(out.glob("checkpoint-*/trainer_state.json"), key=lambda p: p.stat().st_mtime).read_text())
    return [h["step"] for h in state["log_history"] if "loss" in h]


def test_accelerate_launch_trains_and_saves_an_adapter_that_eval_loads(model_dir, tmp_path, data_file):
    done = recipe(model_dir, tmp_path, "--max_steps", "2", "--save_steps", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "adapter_model.safetensors").exists()  # LoRA adapters saved
    assert steps_logged(tmp_path) == [1, 2]
    assert "gradient_checkpointing" not in done.stderr  # TRL's deprecated calls, once per step, filtered
    # `latentrl eval --adapter` runs the trained policy with the same runner as the baselines.
    from latentrl.evaluation import EvalConfig, run_eval

    base = dict(model=model_dir, data_file=data_file, limit=3, max_new_tokens=8, latent_steps=2)
    trained = run_eval(EvalConfig(**base, adapter=str(tmp_path), output=str(tmp_path / "eval")), progress=False)
    assert trained["adapter"] == str(tmp_path) and trained["n"] == 3


def test_adapter_is_merged_into_the_weights(model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from latentrl.models import ModelLoadError, load_model

    plain = load_model(model_dir, "cpu").model
    peft = get_peft_model(load_model(model_dir, "cpu").model, LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)  # a trained adapter: B != 0
    peft.save_pretrained(tmp_path / "adapter")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        merged = load_model(model_dir, "cpu", adapter=str(tmp_path / "adapter")).model
    assert not [w for w in caught if "gradient_checkpointing" in str(w.message)]  # PEFT's deprecated call, filtered
    before, after = plain.model.layers[0].self_attn.q_proj.weight, merged.model.layers[0].self_attn.q_proj.weight
    assert not after.equal(before) and type(merged) is type(plain)
    with pytest.raises(ModelLoadError, match="no PEFT adapter"):
        load_model(model_dir, "cpu", adapter=str(tmp_path / "nothing"))


def test_readme_recipe_runs_two_epochs_with_wandb_and_no_account(model_dir, tmp_path):
    """The README's command as given (report_to: wandb): no login, so W&B goes offline instead of stopping.
    2 problems, 1 per step: 4 steps are two epochs, every prompt seen twice with num_generations copies."""
    done = recipe(model_dir, tmp_path, "--train_size", "2", "--max_steps", "4", "--save_steps", "4", wandb=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "W&B offline" in done.stderr
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    state = json.loads((tmp_path / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["epoch"] == 2.0


def test_resume_from_checkpoint_continues_at_the_same_step(model_dir, tmp_path):
    first = recipe(model_dir, tmp_path, "--max_steps", "2", "--save_steps", "2")
    assert first.returncode == 0, first.stderr[-3000:]
    # A killed run leaves its last checkpoint; the rerun picks it up and goes on from step 3.
    again = recipe(model_dir, tmp_path, "--max_steps", "3", "--save_steps", "1", "--resume_from_checkpoint", "true")
    assert again.returncode == 0, again.stderr[-3000:]
    assert steps_logged(tmp_path) == [1, 2, 3]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--latent_stpes", "4"], "latent_stpes"),
        (["--latent_steps", "-1"], "latent_steps must be >= 0"),
        (["--per_device_train_batch_size", "3", "--num_generations", "2"], "num_generations"),
    ],
)
def test_bad_recipe_fails_before_the_model_loads(tmp_path, extra, message):
    done = recipe("no/such-model-would-load", tmp_path, *extra, launcher=("python",))
    assert done.returncode == 2
    assert message in done.stderr and "could not load model" not in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1].startswith("grpo: error: ")


def test_unknown_model_and_lora_targets_end_in_one_line(model_dir, tmp_path):
    for extra in (["--model_name", "no/such-model"], ["--lora_targets", "q_proj,nonesuch"]):
        done = recipe(model_dir, tmp_path, *extra, launcher=("python",))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("grpo: error: ")
    assert "nonesuch" in done.stderr and "q_proj" in done.stderr


@pytest.mark.distributed
def test_two_ranks_with_torchrun(model_dir, tmp_path):
    done = recipe(model_dir, tmp_path, "--max_steps", "1", "--save_steps", "1",
                  launcher=("torchrun", "--nproc_per_node", "2", "--master_port", "29531"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert steps_logged(tmp_path) == [1]


@pytest.mark.distributed
@pytest.mark.parametrize("zero", ["zero2_cpu", "zero3_cpu"])
def test_deepspeed_zero_on_cpu(model_dir, tmp_path, zero):
    launcher = ("accelerate", "launch", "--config_file", f"recipes/accelerate/{zero}.yaml")
    done = recipe(model_dir, tmp_path, "--max_steps", "2", "--save_steps", "2", launcher=launcher)
    assert done.returncode == 0, done.stderr[-3000:]
    assert steps_logged(tmp_path) == [1, 2]
