"""Prompt sets: the default set is today's prompts exactly; sets load by name or path; a bad file is
one clear error; each task's family picks the reference set's final instruction."""

import json
from pathlib import Path

import pytest
import yaml

from latentrl.cli import main
from latentrl.mas import MethodConfig, load_prompt_set
from latentrl.mas.prompts import latent_prompts, render, text_context
from latentrl.mas.promptset import SHIPPED, shipped_names
from latentrl.mas.roles import SOLVER, TOPOLOGIES
from latentrl.mas.semantics import layout
from latentrl.tasks import choice, get_task
from latentrl.tasks.registry import all_tasks
from tests.test_think import THINKING_TEMPLATE, char_tokenizer

# The messages of the code before prompt sets existed, written by it (question "What is 2+3?", format
# "FORMAT", TextMAS outputs "output of <role>").
GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "default_prompts.json").read_text())
Q, F = "What is 2+3?", "FORMAT"


def test_default_set_is_the_prompts_of_before():
    ps = load_prompt_set("default")
    assert ps.system is None and MethodConfig().prompt_set == ps
    assert ps.message(SOLVER, Q, answer_format=F) == GOLDEN["single"]
    for topo, (*workers, final) in TOPOLOGIES.items():
        h = topo == "hierarchical"
        passed = [(w, f"output of {w}") for w in workers]
        latent = [ps.message(f"{topo}/{r}", Q, ps.note([] if h else workers[:k]), F) for k, r in enumerate(workers)]
        latent.append(ps.message(f"{topo}/{final}", Q, ps.note(workers), F))
        text = [ps.message(f"{topo}/{r}", Q, None if h else text_context(passed[:k]), F) for k, r in enumerate(workers)]
        text.append(ps.message(f"{topo}/{final}", Q, text_context(passed), F))
        assert latent == GOLDEN[f"latent_mas/{topo}"] and text == GOLDEN[f"text_mas/{topo}"]


def test_default_latent_prompt_ids_are_the_rendered_golden_messages(tok):
    for topo in TOPOLOGIES:
        workers, finals = latent_prompts(tok, topo, [Q], F)
        assert [w[0] for w in workers] + finals == [render(tok, msg) for msg in GOLDEN[f"latent_mas/{topo}"]]


def test_reference_set_has_a_system_turn_and_an_instruction_per_family(tok):
    ps = load_prompt_set("reference")
    assert ps.system and ps.latent_note is None
    expected = {"math": "\\boxed{}", "choice": "letter", "code": "```python"}
    for name, task in all_tasks().items():
        assert expected[task.family] in ps.answer_format(task.family, task.answer_format), name
        assert (task.family == "choice") == (task.score is choice.score), name
        assert (task.family == "code") == task.executes_code, name
    workers, finals = latent_prompts(tok, "sequential", [Q], "FMT", None, ps, layout("reference", "sequential", 2))
    assert tok.decode(finals[0]).startswith(f"<|system|>{ps.system}<eos><|user|>")
    assert "FMT" in tok.decode(finals[0]) and "FMT" not in tok.decode(workers[0][0])


def test_think_reaches_the_template_under_both_semantics():
    thinking = char_tokenizer(THINKING_TEMPLATE)
    for semantics in ("current", "reference"):
        cfg = MethodConfig(latent_steps=1, semantics=semantics, think="off")
        lay = layout(semantics, "hierarchical", 1)
        workers, finals = latent_prompts(thinking, "hierarchical", [Q], F, cfg.enable_thinking, cfg.prompt_set, lay)
        assert all(thinking.decode(p[0]).endswith("</think> ") for p in [*workers, finals])


def test_sets_load_by_name_and_by_yaml_or_json_path(tmp_path):
    assert {"default", "reference"} <= set(shipped_names())
    shipped = load_prompt_set("reference")
    data = yaml.safe_load((SHIPPED / "reference.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "mine.json").write_text(json.dumps(data))
    for path in (tmp_path / "mine.yaml", tmp_path / "mine.json"):
        loaded = load_prompt_set(str(path))
        assert loaded.name == str(path) and loaded.templates == shipped.templates and loaded.system == shipped.system
    assert MethodConfig(prompts=str(tmp_path / "mine.json")).prompt_set.templates == shipped.templates
    assert MethodConfig(semantics="reference").prompt_set == shipped


def test_a_prompt_file_edited_between_resumes_is_refused(tmp_path, capsys, data_file, model_dir):
    """The set is recorded by content hash, not only by path: predictions made with other prompts never mix."""
    path, out = tmp_path / "mine.yaml", tmp_path / "out"
    path.write_text((SHIPPED / "default.yaml").read_text())
    args = ["eval", "--model", model_dir, "--data-file", data_file, "--output", str(out), "--prompts", str(path),
            "--max-new-tokens", "2", "--latent-steps", "1"]  # fmt: skip
    assert main([*args, "--limit", "1"]) == 0
    recorded = json.loads((out / "config.json").read_text())["prompt_sha256"]
    assert recorded == load_prompt_set(str(path)).sha256
    path.write_text("# a comment and other layout do not count\n" + yaml.safe_dump(yaml.safe_load(path.read_text())))
    assert main([*args, "--limit", "2"]) == 0
    path.write_text(broken(solver="Solve: {question}"))
    capsys.readouterr()
    assert main([*args, "--limit", "3"]) == 2
    err = capsys.readouterr().err
    assert "made with other prompts" in err and len(err.strip().splitlines()) == 1
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2  # nothing lost, nothing mixed


def broken(**changes) -> str:
    data = yaml.safe_load((SHIPPED / "default.yaml").read_text())
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node[p]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    "content,message",
    [
        ("system: [unclosed", "not valid YAML/JSON"),
        ("- a list", "the top level must be a mapping"),
        (broken(persona="x"), "unknown keys ['persona']"),
        (broken(**{"topologies.sequential.critic": None}), "topology 'sequential' must give a template for exactly"),
        (
            broken(**{"topologies.hierarchical.math": "Solve {problem}"}),
            "'hierarchical/math' uses unknown placeholders",
        ),
        (broken(solver=["Solve it."]), "'solver' never uses {question}"),
        (broken(solver="Solve {question"), "'solver': "),
        (broken(answer_formats={"poetry": "rhyme"}), "unknown families ['poetry']"),
        (broken(system=3), "'system' must be a string or null"),
        (broken(latent_note="{who}"), "'latent_note' uses unknown placeholders"),
    ],
)
def test_a_malformed_set_is_one_clear_error_naming_the_file(content, message, tmp_path, capsys, data_file):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ValueError, match="prompt set .*bad.yaml: ") as err:
        load_prompt_set(str(path))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert main(["eval", "--data-file", data_file, "--output", str(tmp_path / "out"), "--prompts", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_the_final_instruction_follows_the_task_family():
    ps = load_prompt_set("reference")
    gsm8k, arc = get_task("gsm8k"), get_task("arc_challenge")
    assert ps.answer_format(gsm8k.family, gsm8k.answer_format) == ps.answer_formats["math"]
    assert load_prompt_set("default").answer_format(arc.family, arc.answer_format) == arc.answer_format
