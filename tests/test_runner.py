"""The runner and the CLI: outputs, resume after a kill, config mismatch, bad input."""

import json
import os
from pathlib import Path

import pytest
import torch

from latentrl.cli import main
from latentrl.evaluation import ConfigError, EvalConfig, run_eval
from tests.conftest import char_tokenizer, tiny_model


def config(model_dir, data_file, out, **kw):
    base = dict(model=model_dir, data_file=data_file, output=str(out), max_new_tokens=6, batch_size=2, latent_steps=2)
    return EvalConfig(**{**base, **kw})


def lines(out):
    return [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]


def test_run_writes_predictions_summary_and_config(model_dir, data_file, tmp_path):
    s = run_eval(config(model_dir, data_file, tmp_path, limit=3), progress=False)
    rows = lines(tmp_path)
    assert [r["id"] for r in rows] == ["0", "1", "2"] and s["n"] == 3
    assert s["accuracy"] == sum(r["correct"] for r in rows) / 3
    assert s["latent_steps_total"] == 6 and all(r["memory_length"] > 6 for r in rows)
    assert set(rows[0]["tokens_per_agent"]) == {"planner", "critic", "refiner", "judger"}
    assert json.loads((tmp_path / "config.json").read_text())["method"] == "latent_mas"
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(s))


def test_killed_run_resumes_without_loss_or_duplicates(model_dir, data_file, tmp_path):
    run_eval(config(model_dir, data_file, tmp_path, limit=4), progress=False)
    path = tmp_path / "predictions.jsonl"
    first = lines(tmp_path)
    # A kill in the middle of a write leaves a torn last line.
    path.write_text(path.read_text()[:-25])
    s = run_eval(config(model_dir, data_file, tmp_path, limit=7), progress=False)
    rows = lines(tmp_path)
    assert sorted(r["id"] for r in rows) == [str(i) for i in range(7)] and s["n"] == 7
    assert rows[:3] == first[:3]  # finished work is kept, not recomputed
    assert rows[3]["text"] == first[3]["text"]  # the torn question was redone (greedy: same answer)


def test_changed_config_refuses_an_old_directory(model_dir, data_file, tmp_path):
    run_eval(config(model_dir, data_file, tmp_path, limit=1), progress=False)
    with pytest.raises(ConfigError, match="latent_steps: 2 -> 5"):
        run_eval(config(model_dir, data_file, tmp_path, limit=1, latent_steps=5), progress=False)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--latent-steps", "-1"], "latent_steps must be >= 0"),
        (["--method", "telepathy"], "unknown method"),
        (["--topology", "ring"], "unknown topology"),
        (["--task", "nope"], "unknown task"),
        (["--model", "no-such-org/no-such-model"], "could not load model"),
        (["--data-source", "hub", "--data-file", ""], "--data-file"),
    ],
)
def test_cli_bad_input_exits_with_one_clear_message(args, message, tmp_path, capsys, monkeypatch, data_file):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from latentrl.hub import hub_reachable

    hub_reachable.cache_clear()
    rc = main(["eval", "--data-file", data_file, "--output", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err


def test_model_without_chat_template_is_refused(tmp_path, data_file, capsys):
    tok = char_tokenizer(chat_template=None)
    tiny_model("qwen2", len(tok)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    rc = main(["eval", "--model", str(tmp_path / "m"), "--data-file", data_file, "--output", str(tmp_path / "o")])
    assert rc == 2 and "no chat template" in capsys.readouterr().err


def test_offline_without_data_names_the_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from latentrl.hub import hub_reachable

    hub_reachable.cache_clear()
    rc = main(["eval", "--data-source", "hub", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "openai/gsm8k" in err and "--data-file" in err


def one_line_error(capsys) -> str:
    """The CLI's stderr, checked to be one line and no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


GOOD_ROW = '{"question": "What is 1 + 1?", "answer": "#### 2"}\n'


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("schema.jsonl", GOOD_ROW + '{"problem": "What is 2 + 2?", "answer": "#### 4"}\n',
         "schema.jsonl line 2: no field 'question' (its fields: problem, answer)"),
        ("broken.jsonl", GOOD_ROW + '{"question": "x", "answer": \n', "broken.jsonl line 2: malformed JSON"),
        ("broken.json", '[\n{"question": "x",\n "answer": }\n]', "broken.json line 3 column 12: malformed JSON"),
        ("list.jsonl", GOOD_ROW + '["What is 2 + 2?", "4"]\n', "list.jsonl line 2: expected a JSON object, got list"),
        ("empty.jsonl", "\n\n", "empty.jsonl: no rows"),
        ("empty.json", "[]", "empty.json: no rows"),
    ],
)  # fmt: skip
def test_bad_data_files_name_the_file_and_line(name, content, message, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(content)
    assert main(["eval", "--data-file", str(path), "--output", str(tmp_path / "out")]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_rows_that_do_not_fit_the_task_name_the_file(tmp_path, capsys):
    path = tmp_path / "arc.jsonl"  # ARC schema, but the answer key names no option
    row = {"id": "q", "question": "?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"}
    path.write_text(json.dumps(row) + "\n")
    assert main(["eval", "--task", "arc_easy", "--data-file", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "arc.jsonl: rows do not fit task 'arc_easy'" in one_line_error(capsys)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--task", ""], "argument --task: expected one or more comma-separated names, got ''"),
        (["--method", ","], "argument --method: expected one or more"),
        (["--latent-steps", "two"], "argument --latent-steps: expected comma-separated integers"),
        (["--device", "gpu0"], "--device 'gpu0' is not a device"),
    ],
)
def test_cli_usage_errors_are_one_line(args, message, tmp_path, capsys, data_file):
    with pytest.raises(SystemExit) as exit_:
        rc = main(["eval", "--data-file", data_file, "--output", str(tmp_path / "o"), *args])
        raise SystemExit(rc)
    assert exit_.value.code == 2 and message in one_line_error(capsys)


def test_output_that_cannot_be_a_directory(tmp_path, capsys, data_file, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["eval", "--data-file", data_file, "--output", str(a_file)]) == 2
    assert f"--output {a_file} is a file" in one_line_error(capsys)
    assert main(["eval", "--data-file", data_file, "--output", str(a_file / "run")]) == 2
    assert "is a file, so the directory cannot be created" in one_line_error(capsys)
    # Tests may run as root, for whom every directory is writable: the check asks os.access.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main(["eval", "--data-file", data_file, "--output", str(locked / "run")]) == 2
    assert f"{locked} is not writable" in one_line_error(capsys)
    assert a_file.read_text() == "x"


def test_cuda_device_without_a_gpu(tmp_path, capsys, data_file, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", "--data-file", data_file, "--output", str(tmp_path), "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA GPU is visible here" in one_line_error(capsys)
    assert not (tmp_path / "config.json").exists()


def test_a_failed_run_does_not_lock_its_directory(model_dir, data_file, tmp_path, capsys):
    args = ["eval", "--data-file", data_file, "--output", str(tmp_path), "--limit", "2", "--max-new-tokens", "3"]
    assert main([*args, "--model", str(tmp_path / "typo")]) == 2  # fails while loading the model
    assert "could not load model" in one_line_error(capsys)
    assert main([*args, "--model", model_dir]) == 0  # the corrected rerun takes the directory
    capsys.readouterr()
    assert json.loads((tmp_path / "config.json").read_text())["model"] == model_dir
    # Once it holds predictions, the directory still refuses another config, and keeps them.
    before = (tmp_path / "predictions.jsonl").read_text()
    assert main([*args, "--model", model_dir, "--latent-steps", "3"]) == 2
    assert "another config (latent_steps: 8 -> 3)" in one_line_error(capsys)
    assert (tmp_path / "predictions.jsonl").read_text() == before


def test_changed_data_refuses_to_mix(model_dir, data_file, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text(Path(data_file).read_text())
    cfg = config(model_dir, str(data), tmp_path / "run", limit=2)
    run_eval(cfg, progress=False)
    data.write_text(data.read_text().replace("What is 6 + 6?", "What is 6 + 7?"))  # a row past --limit
    with pytest.raises(ConfigError, match="holds predictions on other data"):
        run_eval(cfg, progress=False)
