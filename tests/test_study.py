"""The study report (evals/study.py) from finished points: tables, paired differences, trends, figures."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "evals"))

import study  # noqa: E402

from latentrl.evaluation.stats import summarize  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402

IDS = [e.id for e in get_task("chains").load("offline", None)][:40]


def point(root: Path, method: str, m: int, right: set[int], train_m: int | None = None, control: str = "none",
          train_control: str | None = None) -> None:  # fmt: skip
    """A finished point as the runner leaves it: predictions.jsonl and summary.json, questions `right` correct."""
    rows = [{"id": q, "correct": i in right, "pred": "gold" if i in right else f"wrong {i}", "correct_strict": False,
             "pred_strict": None, "output_tokens": 10,
             "tokens_per_agent": {"judger": 10}, "forwards": 10 + m, "latent_steps": 3 * m, "seconds": 1.0}
            for i, q in enumerate(IDS)]  # fmt: skip
    out = root / "chains" / f"{method}-m{m}-{control}"
    out.mkdir(parents=True)
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    topology = "-" if method == "single" else "sequential"
    summary = {"task": "chains", "method": method, "topology": topology, "latent_steps": m, "seed": 0,
               "model": "tiny", "adapter": None, "train_latent_steps": train_m, "memory_control": control,
               "train_memory_control": train_control, "max_new_tokens": 96, **summarize(rows)}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary))


def test_report_has_paired_differences_trends_and_figures(tmp_path):
    zero, trained = tmp_path / "zero", tmp_path / "trained"
    point(zero, "single", 0, set(range(10)))
    # Untrained: right on 0-3 at every m, plus 10-19 at m = 3 only: a rise of 0.25 between m = 1 and m = 3.
    for m, right in ((0, set(range(4))), (1, set(range(4))), (3, set(range(4)) | set(range(10, 20)))):
        point(zero, "latent_mas", m, right)
        point(trained / "train-m0" / "eval", "latent_mas", m, set(range(12)), train_m=0)  # flat after training
        point(trained / "train-m3" / "eval", "latent_mas", m, set(range(14)), train_m=3)
        point(tmp_path / "seed1" / "train-m0" / "eval", "latent_mas", m, set(range(16)), train_m=0)
    text = study.write(zero, trained, tmp_path / "docs", replicates=(tmp_path / "seed1",)).read_text()
    assert "| latent_mas sequential m=3 | 0.350 | +0.250 |" in text  # minus m = 0, same questions
    assert "| latent_mas sequential m=0 | 0.100 | -0.150 |" in text  # minus single
    # x = log2(1 + m) = 0, 1, 2: slope of accuracies 0.10, 0.10, 0.35 is 0.125 per doubling.
    assert "| latent_mas sequential | 0, 1, 3 | +0.1250 |" in text
    assert "| GRPO at m=0 | 0, 1, 3 | +0.0000 | [+0.0000, +0.0000] | 40 |" in text
    assert "| latent_mas sequential m=0 (GRPO at m=0) | +0.200 [" in text  # trained minus untrained at eval m
    assert "| latent_mas sequential m=1 (GRPO at m=3) | +0.050 [" in text  # minus the adapter trained at m = 0
    # Another training seed: against the untrained pipeline (4 right) and the main adapter (12 right), at m = 1.
    assert "## Another training seed: seed1" in text
    assert "| latent_mas sequential m=1 (GRPO at m=0) | +0.300 [" in text and "] | +0.100 [" in text
    figures = [line for line in text.splitlines() if line.startswith("![")]
    assert figures and all((tmp_path / "docs" / line.split("(")[1].rstrip(")")).exists() for line in figures)


def test_no_finished_point_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["study.py", "--zero", str(tmp_path / "a"), "--trained", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="no finished point"):
        study.main()


def test_bad_points_and_missing_replicates_are_one_line(tmp_path, monkeypatch, capsys):
    zero = tmp_path / "zero"
    point(zero, "single", 0, set(range(10)))
    point(zero, "latent_mas", 0, set(range(4)))
    (zero / "chains" / "latent_mas-m0-none" / "summary.json").write_text("{torn")
    assert [p["method"] for p in study.load_points(zero)] == ["single"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "latent_mas-m0-none/summary.json is not a run summary" in err
    argv = ["study.py", "--zero", str(zero), "--out", str(tmp_path / "docs"), "--replicate", str(tmp_path / "nope")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match="no such replicate directory"):
        study.main()


def test_controls_are_paired_against_real_memory_and_kept_out_of_the_curves(tmp_path):
    zero, trained, ctrl = tmp_path / "zero", tmp_path / "trained", tmp_path / "ctrl"
    point(zero, "latent_mas", 0, set(range(4)))
    point(ctrl, "latent_mas", 8, set(range(10)))  # real memory: 10 right
    point(ctrl, "latent_mas", 8, set(range(6)), control="shuffled")  # 6 right: real minus shuffled = +0.100
    point(ctrl, "latent_mas", 8, set(range(10)), control="pause")
    point(ctrl, "latent_mas", 0, set(range(2)), control="no_memory")
    point(trained / "train-m8" / "eval", "latent_mas", 8, set(range(20)), train_m=8, train_control="none")
    point(trained / "train-m8" / "eval", "latent_mas", 8, set(range(12)), train_m=8, train_control="none",
          control="shuffled")  # fmt: skip
    text = study.write(zero, trained, tmp_path / "docs", control_dirs=(ctrl,)).read_text()
    assert "| sequential m=8 | 96 | - | 0.250 | shuffled | 0.150 | +0.100 [" in text
    shuffled_row = text.split("| shuffled | 0.150 |")[1].split("\n")[0]
    assert shuffled_row.endswith("| 36/40 |")  # 6 right in both, 30 wrong alike; 4 right with real memory only
    assert "| pause | 0.250 | +0.000 [+0.000, +0.000] | 40/40 |" in text
    assert "| sequential m=8 | 96 | - | 0.250 | pause | 0.250 | +0.000 [" in text
    assert "![chains_memory_controls](chains_memory_controls.png)" in text
    assert (tmp_path / "docs" / "chains_memory_controls.png").stat().st_size > 0
    assert "| sequential m=8 | 96 | - | 0.250 | no_memory | 0.050 | +0.200 [" in text
    assert "| sequential m=8 | 96 | GRPO m=8 | 0.500 | shuffled | 0.300 | +0.200 [" in text
    after = text.split("## After GRPO")[1].split("##")[0]
    assert "0.300" not in after  # the trained curve holds the real-memory point only


def test_the_gain_with_m_is_paired_against_the_same_gain_under_a_control(tmp_path):
    ctrl = tmp_path / "ctrl"
    point(ctrl, "latent_mas", 0, set(range(4)))
    point(ctrl, "latent_mas", 8, set(range(10)))  # real memory: +6 right of 40 over m = 0
    point(ctrl, "latent_mas", 0, set(range(2)), control="shuffled")
    point(ctrl, "latent_mas", 8, set(range(6)), control="shuffled")  # shuffled: +4 right over its own m = 0
    text = study.write(tmp_path / "zero", tmp_path / "trained", tmp_path / "docs", control_dirs=(ctrl,)).read_text()
    row = text.split("## Does the gain with m need the memory's content?")[1].split("\n| sequential |")[1]
    assert row.startswith(" 96 | shuffled | 8 | +0.150 [") and "| +0.100 [" in row
    # per question (real gain - shuffled gain): +1 on questions 6-9, -1 on 2-3 (their m = 0 right only when real)
    assert row.split("\n")[0].endswith("| +0.050 [-0.076, +0.176] |")


def test_grpo_on_shuffled_memory_is_paired_against_untrained_and_real_memory_training(tmp_path):
    trained, ctrl = tmp_path / "trained", tmp_path / "ctrl"
    point(ctrl, "latent_mas", 8, set(range(10)))
    point(trained / "train-m8" / "eval", "latent_mas", 8, set(range(20)), train_m=8, train_control="none")
    point(tmp_path / "shuffled" / "train-m8" / "eval", "latent_mas", 8, set(range(14)), train_m=8,
          train_control="shuffled")  # fmt: skip
    text = study.write(tmp_path / "zero", trained, tmp_path / "docs", control_dirs=(ctrl, tmp_path / "shuffled"))
    gains = text.read_text().split("## Does GRPO learn to use the memory?")[1].split("##")[0]
    assert "| GRPO m=8 | sequential m=8 | none | 0.500 | +0.250 [" in gains  # 20 - 10 right of 40
    assert "| GRPO m=8, shuffled memory | sequential m=8 | none | 0.350 | +0.100 [" in gains
    assert "| +0.100 [" in gains and "| -0.150 [" in gains  # shuffled-memory training minus real-memory training
