"""Grids, seeds, reports, W&B offline, data parallelism and a real kill -9 mid-run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from latentrl.cli import main
from latentrl.evaluation import ConfigError, EvalConfig, run_eval
from latentrl.evaluation.grid import expand
from latentrl.evaluation.report import group_seeds, markdown_table
from latentrl.evaluation.stats import aggregate, paired_difference, seed_interval, trend, wilson
from latentrl.tasks import Example, Score, Task
from latentrl.tasks.registry import TASKS

ROOT = Path(__file__).resolve().parents[1]


def ids_in(out: Path) -> list[str]:
    return [json.loads(x)["id"] for x in (out / "predictions.jsonl").read_text().splitlines()]


def test_wilson_and_seed_intervals():
    lo, hi = wilson(8, 10)
    assert (round(lo, 3), round(hi, 3)) == (0.490, 0.943)  # textbook values for 8/10
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    lo, hi = seed_interval([0.5, 0.6, 0.7])
    assert lo < 0.6 < hi and round(hi - 0.6, 3) == round(4.303 * 0.1 / 3**0.5, 3)


def test_aggregate_averages_seeds():
    runs = [{"task": "t", "method": "m", "topology": "s", "latent_steps": 2, "model": "x", "n": 10, "accuracy": a,
             "accuracy_strict": a, "invalid_format_rate": 0.0, "output_tokens": 5.0, "forwards": 7.0,
             "seconds_per_question": 1.0} for a in (0.2, 0.4)]  # fmt: skip
    agg = aggregate(runs)
    assert agg["seeds"] == 2 and agg["accuracy"] == pytest.approx(0.3) and agg["accuracy_ci95"][0] < 0.2


def test_grid_expansion_dedupes_axes_a_method_ignores(tmp_path):
    base = EvalConfig(output=str(tmp_path))
    points = expand(base, {"method": ["single", "text_mas", "latent_mas"], "latent_steps": [0, 4], "seed": [0, 1]})
    names = sorted(str(Path(p.output).relative_to(tmp_path)) for p in points)
    assert names == sorted(
        [f"gsm8k/single-s{s}" for s in (0, 1)]
        + [f"gsm8k/text_mas-sequential-s{s}" for s in (0, 1)]
        + [f"gsm8k/latent_mas-sequential-m{m}-s{s}" for m in (0, 4) for s in (0, 1)]
    )
    assert expand(base, {"method": ["single"]})[0].output == str(tmp_path)  # one point: the directory itself
    with pytest.raises(ValueError, match="not grid axes"):
        expand(base, {"model": ["a"]})


def test_cli_grid_with_seeds_and_report(model_dir, data_file, tmp_path, capsys):
    args = ["eval", "--model", model_dir, "--data-file", data_file, "--output", str(tmp_path), "--limit", "3",
            "--max-new-tokens", "4", "--temperature", "1.0", "--method", "single,latent_mas", "--latent-steps", "0,2",
            "--seed", "0,1"]  # fmt: skip
    assert main(args) == 0
    summaries = sorted(tmp_path.rglob("summary.json"))
    assert len(summaries) == 6  # single x 2 seeds, latent_mas x m in {0, 2} x 2 seeds
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 + 3 and all("| 2 |" in row for row in table[2:])  # 3 points, 2 seeds each
    # The table's accuracy is the mean over the seeds' predictions.
    row = next(r for r in table if "| latent_mas | sequential | - | 2 | 2 |" in r)
    accs = []
    for s in (0, 1):
        rows = [json.loads(x) for x in (tmp_path / f"gsm8k/latent_mas-sequential-m2-t4-s{s}/predictions.jsonl").open()]
        accs.append(sum(r["correct"] for r in rows) / len(rows))
    assert f"| {sum(accs) / 2:.3f} |" in row


def test_report_names_what_a_run_changed_from_the_default_semantics():
    base = {"task": "chains", "method": "latent_mas", "topology": "hierarchical", "latent_steps": 4, "seed": 0,
            "n": 10, "accuracy": 0.5, "accuracy_ci95": [0.2, 0.8], "seeds": 1}  # fmt: skip
    older = dict(base)  # written before semantics were recorded: the defaults
    table = markdown_table(group_seeds([older, {**base, "semantics": "reference", "prompts": "reference"}]))
    rows = table.splitlines()
    assert "| variant |" in rows[0] and len(rows) == 4
    assert "| hierarchical | - |" in rows[2] and "| semantics=reference, prompts=reference |" in rows[3]
    assert "variant" not in markdown_table([older])  # default runs only: no extra column


def test_code_tasks_refuse_to_run_without_the_opt_in(tmp_path, data_file):
    TASKS["fake_code"] = Task("fake_code", "x/y", "fmt", lambda s, f: [Example("0", "q", "g")],
                              lambda t, e: Score(None, None, False, False), executes_code=True)  # fmt: skip
    try:
        with pytest.raises(ConfigError, match="--allow-code-execution"):
            run_eval(EvalConfig(task="fake_code", output=str(tmp_path)))
    finally:
        del TASKS["fake_code"]


def test_wandb_logs_offline_without_blocking(model_dir, data_file, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cfg = EvalConfig(model=model_dir, data_file=data_file, output=str(tmp_path / "run"), limit=2, max_new_tokens=3,
                     wandb=True, wandb_group="test")  # fmt: skip
    t0 = time.time()
    summary = run_eval(cfg, progress=False)
    assert summary["wandb_mode"] == "offline" and time.time() - t0 < 60
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def _eval_cmd(model_dir, data_file, out, *extra):
    return ["-m", "latentrl.cli", "eval", "--model", model_dir, "--data-file", data_file, "--output", str(out),
            "--latent-steps", "2", *extra]  # fmt: skip


@pytest.mark.subprocess
def test_kill_9_mid_run_then_rerun_completes_each_question_once(model_dir, data_file, tmp_path):
    cmd = [sys.executable, *_eval_cmd(model_dir, data_file, tmp_path, "--batch-size", "1", "--max-new-tokens", "300")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pred = tmp_path / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not pred.exists() or len(pred.read_text().splitlines()) < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(pred.read_text().splitlines())
    assert 2 <= killed_at < 7, "the kill should land mid-run"
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ids = ids_in(tmp_path)
    assert sorted(ids) == [str(i) for i in range(7)]  # every question exactly once


@pytest.mark.subprocess
@pytest.mark.distributed
def test_two_ranks_shard_and_merge(model_dir, data_file, tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", *_eval_cmd(model_dir, data_file,
           tmp_path, "--max-new-tokens", "3", "--device", "cpu")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(ids_in(tmp_path)) == [str(i) for i in range(7)]
    assert not list(tmp_path.glob("predictions.rank*.jsonl"))  # shards merged away
    assert json.loads((tmp_path / "summary.json").read_text())["n"] == 7
    # Sharding must not change answers: a single-process run gives the same texts.
    single = tmp_path / "single"
    run_eval(EvalConfig(model=model_dir, data_file=data_file, output=str(single), latent_steps=2, max_new_tokens=3),
             progress=False)  # fmt: skip
    text = lambda d: {json.loads(x)["id"]: json.loads(x)["text"] for x in (d / "predictions.jsonl").open()}  # noqa: E731
    assert text(tmp_path) == text(single)


ALL_TASKS = ["gsm8k", "aime2024", "aime2025", "gpqa_diamond", "arc_easy", "arc_challenge", "medqa", "mbpp_plus",
             "humaneval_plus", "math500", "arithmetic"]  # fmt: skip


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_task_runs_end_to_end(task, model_dir, tmp_path):
    from latentrl.tasks.registry import all_tasks

    assert set(ALL_TASKS) <= set(all_tasks())
    fixture = ROOT / "tests" / "fixtures" / f"{task}.jsonl"
    data = str(fixture) if fixture.exists() else None  # arithmetic is generated
    cfg = EvalConfig(model=model_dir, task=task, data_file=data, output=str(tmp_path), limit=3,
                     max_new_tokens=4, latent_steps=1, allow_code_execution=True)  # fmt: skip
    summary = run_eval(cfg, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "predictions.jsonl").open()]
    assert summary["n"] == len(rows) == (min(3, len(fixture.read_text().splitlines())) if data else 3)
    assert summary["accuracy"] == sum(r["correct"] for r in rows) / len(rows)


def test_paired_difference_uses_per_question_differences():
    a = {str(i): i < 30 for i in range(100)}  # 30 right
    b = dict(a) | {str(i): False for i in range(6)} | {"50": True, "51": True}  # 6 lost, 2 gained
    diff, (lo, hi), n = paired_difference(a, b)
    assert n == 100 and diff == pytest.approx(0.04)
    half = 2.000 * ((8 - 100 * 0.04**2) / 99) ** 0.5 / 10  # t(df 60 row, conservative) * sd / sqrt(n)
    assert (lo, hi) == pytest.approx((0.04 - half, 0.04 + half))
    assert hi - lo < wilson(30, 100)[1] - wilson(30, 100)[0]  # narrower than one unpaired interval
    assert paired_difference(a, a) == (0.0, (0.0, 0.0), 100)
    assert paired_difference(a, {"x": True})[2] == 0  # no common question


def test_trend_is_the_mean_per_question_slope_on_log2_of_1_plus_m():
    # m = 0, 1, 3: x = log2(1 + m) = 0, 1, 2. 30 questions right only at m = 3 (slope +0.5), 10 right only at
    # m = 0 (-0.5), 60 never: accuracies 0.10 / 0.00 / 0.30, whose least-squares slope is +0.1 per doubling.
    kinds = ["up"] * 30 + ["down"] * 10 + ["never"] * 60
    runs = {
        m: {str(i): (k == "up" and m == 3) or (k == "down" and m == 0) for i, k in enumerate(kinds)} for m in (0, 1, 3)
    }
    slope, (lo, hi), n = trend(runs)
    assert n == 100 and slope == pytest.approx(0.1)
    half = 2.000 * (9 / 99) ** 0.5 / 10  # sd of the per-question slopes (0.5 x30, -0.5 x10, 0 x60) / sqrt(n)
    assert (lo, hi) == pytest.approx((0.1 - half, 0.1 + half))
    del runs[1]["0"]  # a question one run lacks is left out of all
    assert trend(runs)[2] == 99
    assert trend({m: {"a": True, "b": False} for m in (0, 8)})[0] == 0.0  # flat
    assert trend({0: {"a": True}}) == (0.0, (0.0, 0.0), 0)  # one m: no trend


def test_rescore_brings_a_finished_run_up_to_the_current_scorer(model_dir, data_file, tmp_path, capsys):
    """Rows scored by an older extractor are scored again from their saved texts; nothing is generated, the
    texts and costs stay, summary.json follows; an unfinished run is left as it was."""
    out = tmp_path / "run"
    run_eval(EvalConfig(model=model_dir, data_file=data_file, output=str(out), limit=3, max_new_tokens=3),
             progress=False)  # fmt: skip
    rows = [json.loads(x) for x in (out / "predictions.jsonl").open()]
    # As an extractor that read the empty box as the answer left it: the answer sentence was hidden.
    rows[0].update(text=f"so \\boxed{{}} = 1. The answer is {rows[0]['gold']}.", pred="", pred_strict="",
                   correct=False, correct_strict=False)  # fmt: skip
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stale = json.loads((out / "summary.json").read_text())
    stale["train_latent_steps"] = 8  # recorded from an adapter that has since moved: kept, not re-read
    (out / "summary.json").write_text(json.dumps(stale))
    assert main(["rescore", str(tmp_path)]) == 0
    assert "1/3 rows rescored" in capsys.readouterr().out
    new = [json.loads(x) for x in (out / "predictions.jsonl").open()]
    assert new[0]["correct"] and new[0]["pred"] == rows[0]["gold"] and new[0]["pred_strict"] is None
    assert [r["text"] for r in new] == [r["text"] for r in rows] and new[1:] == rows[1:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in new) / 3)
    assert summary["accuracy"] > sum(r["correct"] for r in rows) / 3  # the tampered rows' accuracy
    assert summary["wall_clock_s"] == stale["wall_clock_s"]
    assert summary["train_latent_steps"] == 8
    assert main(["rescore", str(tmp_path)]) == 0 and "0/3 rows rescored" in capsys.readouterr().out
    # A run with fewer rows than its summary counts is still being written: refused, untouched.
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new[:2]))
    assert main(["rescore", str(out)]) == 1
    assert "unfinished run" in capsys.readouterr().err
    assert main(["rescore", str(tmp_path / "nowhere")]) == 2
    # A malformed run is one line and does not stop the others.
    (bad := tmp_path / "bad").mkdir()
    (bad / "predictions.jsonl").write_text('{"id": "x"}\n')
    (bad / "config.json").write_text('{"task": "no-such-task"}')
    (bad / "summary.json").write_text('{"n": 1, "accuracy": 0, "accuracy_strict": 0}')
    (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))  # finished again
    capsys.readouterr()
    assert main(["rescore", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "0/3 rows rescored" in captured.out and captured.err.count("\n") == 1 and "no-such-task" in captured.err


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"n": "3", "accuracy": 0, "accuracy_strict": 0}'])
def test_a_broken_summary_is_rebuilt_by_a_rerun_never_trusted(garbage, model_dir, data_file, tmp_path, capsys,
                                                                 monkeypatch):  # fmt: skip
    out = tmp_path / "run"
    cfg = EvalConfig(model=model_dir, data_file=data_file, output=str(out), limit=3, max_new_tokens=3)
    good = run_eval(cfg, progress=False)
    (out / "summary.json").write_text(garbage)
    assert main(["rescore", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "summary.json is not a run summary" in err

    def no_model(*a, **k):
        raise AssertionError("a finished run must not load a model again")

    monkeypatch.setattr("latentrl.evaluation.runner.load_model", no_model)
    rebuilt = run_eval(cfg, progress=False)  # nothing left to generate: the summary comes from the rows
    assert rebuilt["accuracy"] == good["accuracy"] and rebuilt["n"] == good["n"] == 3
    assert rebuilt["peak_rss_mb"] is None  # its memory was lost with the summary: unknown, not re-measured at idle
    assert main(["rescore", str(out)]) == 0


def test_rows_the_scorer_could_not_judge_are_counted_apart():
    from latentrl.evaluation.stats import summarize

    def row(correct, error=None):
        return {"correct": correct, "correct_strict": correct, "pred_strict": "1" if correct else None,
                "output_tokens": 3, "tokens_per_agent": {"solver": 3}, "forwards": 3, "seconds": 1.0,
                "error": error}  # fmt: skip

    s = summarize([row(True), row(False), row(False, error="sandbox did not start")])
    assert s["n"] == 2 and s["errors"] == 1 and s["accuracy"] == 0.5 and s["invalid_format_rate"] == 0.5
