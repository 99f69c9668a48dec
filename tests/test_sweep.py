"""Sweeps (evals/sweep.py) and their reports (evals/sweep_report.py)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "evals"))

import sweep  # noqa: E402
import sweep_report  # noqa: E402

from latentrl.evaluation import ConfigError  # noqa: E402


def config(model_dir, data_file, out, **kw):
    grid = {"method": ["single", "latent_mas"], "latent_steps": [0, 2], "seed": [0, 1]}
    base = {"model": model_dir, "data_file": data_file, "output": str(out), "limit": 4, "max_new_tokens": 4}
    return {**base, **grid, "temperature": 1.0, **kw}


def test_plan_expands_the_grid_and_refuses_bad_configs(model_dir, data_file, tmp_path):
    points = sweep.plan(config(model_dir, data_file, tmp_path))
    assert len(points) == 2 + 2 * 2  # single x seeds, latent_mas x m x seeds
    assert len({p.output for p in points}) == len(points)
    one = sweep.plan(config(model_dir, data_file, tmp_path, method="latent_mas", latent_steps=2, seed=1))
    assert [p.output for p in one] == [
        p.output for p in points if p.method == "latent_mas" and p.latent_steps == 2 and p.seed == 1
    ]  # narrowed to one point: the full grid's directory
    with pytest.raises(ValueError, match="unknown sweep keys"):
        sweep.plan(config(model_dir, data_file, tmp_path, latent_stepz=3))
    with pytest.raises(ConfigError, match="must be >= 1"):
        sweep.plan(config(model_dir, data_file, tmp_path, batch_size=0))


def test_rerun_skips_finished_points(model_dir, data_file, tmp_path, monkeypatch):
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(config(model_dir, data_file, tmp_path / "out")))  # JSON is YAML
    assert sweep.main(["--config", str(path)]) == 0
    before = {p: p.read_text() for p in (tmp_path / "out").rglob("predictions.jsonl")}
    assert len(before) == 6

    def no_model(*a, **k):
        raise AssertionError("a finished sweep must not load a model again")

    monkeypatch.setattr("latentrl.evaluation.runner.load_model", no_model)
    assert sweep.main(["--config", str(path)]) == 0
    assert {p: p.read_text() for p in before} == before


def test_report_numbers_equal_the_predictions_and_figures_exist(model_dir, data_file, tmp_path):
    for p in sweep.plan(config(model_dir, data_file, tmp_path / "out")):
        sweep.run_eval(p, progress=False)
    path = sweep_report.write_report(str(tmp_path / "out"), tmp_path / "report")
    text = path.read_text()
    for m in (0, 2):
        accs = []
        for seed in (0, 1):
            pred = tmp_path / "out" / f"gsm8k/latent_mas-sequential-m{m}-t4-s{seed}/predictions.jsonl"
            rows = [json.loads(x) for x in pred.open()]
            accs.append(sum(r["correct"] for r in rows) / len(rows))
        row = next(r for r in text.splitlines() if r.startswith(f"| gsm8k | latent_mas | sequential | - | {m} |"))
        assert f"| {sum(accs) / 2:.3f} |" in row
    pngs = sorted((tmp_path / "report").glob("*.png"))
    from latentrl.evaluation.plots import FIGURES

    assert [p.name for p in pngs] == sorted(f"gsm8k_{n}.png" for n in FIGURES)
    assert all(p.stat().st_size > 5000 for p in pngs)


def test_wandb_sweep_summary_run_offline(model_dir, data_file, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    path = tmp_path / "sweep.yaml"
    cfg = config(model_dir, data_file, tmp_path / "out", wandb=True, limit=2, seed=[0])
    path.write_text(json.dumps(cfg))
    assert sweep.main(["--config", str(path)]) == 0
    runs = sorted((tmp_path / "out").rglob("offline-run-*"))
    assert len(runs) == 3 + 1  # one per point, plus the sweep's summary run with the accuracy-vs-m plot


def test_trained_sweep_grid_and_heatmap(model_dir, tmp_path):
    import trained_sweep

    cfg = {
        "recipe": "recipes/configs/arithmetic_cpu.yaml",
        "train_latent_steps": [0, 1],
        "train_overrides": {
            "model_name": model_dir,
            "max_steps": 1,
            "save_steps": 1,
            "report_to": "none",
            "max_completion_length": 4,
            "train_size": 16,
        },  # fmt: skip
        "output": str(tmp_path / "out"),
        "eval": {
            "model": model_dir,
            "task": "arithmetic",
            "method": "latent_mas",
            "latent_steps": [0, 1],
            "limit": 2,
            "max_new_tokens": 3,
        },  # fmt: skip
    }
    path = tmp_path / "trained.yaml"
    path.write_text(json.dumps(cfg))
    assert trained_sweep.main(["--config", str(path)]) == 0
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("summary.json")]
    assert sorted((s["train_latent_steps"], s["latent_steps"]) for s in summaries) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    sweep_report.write_report(str(tmp_path / "out"), tmp_path / "report")
    assert (tmp_path / "report" / "train_m_x_eval_m.png").stat().st_size > 5000


def test_changed_sweep_config_refuses_to_mix_into_old_points(model_dir, data_file, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    cfg = config(model_dir, data_file, tmp_path / "out", method=["latent_mas"], latent_steps=[1], seed=[0])
    path.write_text(json.dumps(cfg))
    assert sweep.main(["--config", str(path)]) == 0
    path.write_text(json.dumps({**cfg, "top_p": 0.9}))  # not an axis: the same directory, another config
    assert sweep.main(["--config", str(path)]) == 2
    assert "top_p: 1.0 -> 0.9" in capsys.readouterr().err


def test_sweep_bad_input_is_one_line(model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "What is 1 + 1?"}\n')
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps(config(model_dir, str(bad), tmp_path / "out")))
    assert sweep.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"sweep: error: {bad} line 1: no field 'question' (its fields: problem)"
    assert not any("Traceback" in line for line in err)
    path.write_text("task: [gsm8k\n")  # malformed YAML
    assert sweep.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sweep: error: {path}: while parsing") and len(err.strip().splitlines()) == 1
