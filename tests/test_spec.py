"""One latent spec: evaluation, methods and GRPO read the same fields, defaults and checks; one row format."""

import dataclasses

import pytest
import torch

from latentrl.evaluation import ConfigError, EvalConfig
from latentrl.evaluation.report import group_seeds, markdown_table
from latentrl.evaluation.stats import POINT, aggregate
from latentrl.latent.trajectory import pack_row, sequential_trajectory, split_row
from latentrl.mas import MethodConfig
from latentrl.mas.spec import LatentSpec

BAD = [
    ({"latent_steps": -1}, "latent_steps must be >= 0"),
    ({"topology": "ring"}, "unknown topology 'ring'"),
    ({"align": "affine"}, "unknown alignment 'affine'"),
    ({"think": "maybe"}, "think takes on | off"),
    ({"semantics": "paper"}, "--semantics takes current | reference"),
    ({"expert_positions": "offset", "semantics": "reference"}, "applies to --semantics current"),
    ({"prompts": "no-such-set"}, "prompt set 'no-such-set'"),
    ({"memory_control": "noise", "latent_steps": 0}, "needs latent steps > 0"),
]


def configs():
    """Each config that carries the latent settings, built with keyword overrides."""
    out = [LatentSpec, MethodConfig, EvalConfig]
    try:
        from latentrl.rl.config import LatentGRPOConfig

        grpo = dict(output_dir="/tmp/x", per_device_train_batch_size=4, num_generations=2, use_cpu=True, bf16=False)
        out.append(lambda **kw: LatentGRPOConfig(**grpo, **kw))
    except ImportError:  # trl is an extra
        pass
    return out


@pytest.mark.parametrize("kw,message", BAD)
def test_every_config_refuses_bad_latent_settings_with_the_same_line(kw, message):
    for make in configs():
        with pytest.raises(ValueError, match=message) as err:
            make(**kw)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):  # evaluation's own type, which the CLI prints as one line
        EvalConfig(**kw)


def test_every_config_has_the_specs_fields_and_defaults():
    spec = {f.name: f.default for f in dataclasses.fields(LatentSpec)}
    for make in configs():
        cfg = make()
        assert {name: getattr(cfg, name) for name in spec} == spec
        assert cfg.layout == LatentSpec().layout and cfg.prompt_set == LatentSpec().prompt_set


def test_eval_hands_its_latent_settings_to_the_method_by_name():
    cfg = EvalConfig(topology="hierarchical", latent_steps=5, align="norm", think="off", prompts="reference",
                     expert_positions="offset", memory_control="pause")  # fmt: skip
    method = cfg.method_config()
    assert method.latent_spec() == cfg.latent_spec() and method is cfg.method_config()  # built once


@pytest.mark.parametrize("m", [0, 3])
def test_pack_and_split_are_inverse_and_match_the_trajectory_layout(m):
    workers, final, latent_id = [[5, 6, 7], [8], [9, 10]], [11, 12], 99
    row = pack_row(workers, final, m, latent_id)
    assert split_row(row, [len(w) for w in workers] + [len(final)], m) == (workers, final)
    traj = sequential_trajectory([[w] for w in workers] + [[final]], m, 0, latent_id)
    assert traj.input_ids[0].tolist() == row and int(traj.latent_mask.sum()) == 3 * m
    with pytest.raises(ValueError, match="does not match its segments"):
        split_row(row + [1], [len(w) for w in workers] + [len(final)], m)


def test_trajectory_rows_and_extend():
    traj = sequential_trajectory([[[1, 2], [3]], [[4], [5, 6, 7]]], 2, 0, 9)
    picked = traj.rows(torch.tensor([1, 1, 0]))
    assert torch.equal(picked.input_ids, traj.input_ids[[1, 1, 0]])
    longer = traj.extend(torch.tensor([[7, 8], [7, 0]]), torch.tensor([[1, 1], [1, 0]]))
    assert longer.input_ids.shape[1] == traj.input_ids.shape[1] + 2
    assert longer.position_ids[0, -2:].tolist() == [traj.position_ids[0, -1] + 1, traj.position_ids[0, -1] + 2]


def summary(seed, accuracy, **kw):
    base = {"task": "chains", "method": "latent_mas", "topology": "sequential", "latent_steps": 8, "model": "m",
            "adapter": None, "train_latent_steps": None, "n": 10, "accuracy": accuracy, "accuracy_strict": 0.0,
            "invalid_format_rate": 1.0, "output_tokens": 5.0, "forwards": 9.0, "seconds_per_question": 1.0,
            "accuracy_ci95": [0, 1], "seed": seed, "max_new_tokens": 96}  # fmt: skip
    return {**base, **kw}


def test_two_seeds_keep_what_identifies_their_point():
    variant = dict(semantics="reference", prompts="reference", expert_positions="shared", memory_control="shuffled")
    agg = aggregate([summary(0, 0.2, **variant), summary(1, 0.4, **variant)])
    assert agg["seeds"] == 2 and agg["accuracy"] == pytest.approx(0.3)
    assert {k: agg[k] for k in variant} == variant and set(POINT) <= set(agg)
    rows = group_seeds([summary(s, 0.1 * s, **variant) for s in (0, 1)] + [summary(s, 0.5, prompts="default")
                                                                            for s in (0, 1)])  # fmt: skip
    assert len(rows) == 2 and sorted(r["seeds"] for r in rows) == [2, 2]
    table = markdown_table(rows)
    assert "semantics=reference" in table and "shuffled" in table  # the variant and memory columns survive
