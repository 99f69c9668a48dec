"""The runner and the CLI: outputs, resume after a kill, config mismatch, bad input."""

import json

import pytest

from latentrl.cli import main
from latentrl.eval import ConfigError, EvalConfig, run_eval
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
    assert s["latent_steps_per_question"] == 6 and all(r["memory_length"] > 6 for r in rows)
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
        (["--latent-steps", "-1"], "latent steps must be >= 0"),
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
