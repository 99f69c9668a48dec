"""The study report: accuracy vs latent steps on held-out chains problems, zero-training and after GRPO.

    .venv/bin/python evals/study.py [--zero runs/study/zero] [--trained runs/study/trained] [--out docs/study]
                                    [--replicate runs/study/trained-seed1 ...]
                                    [--controls runs/study/controls runs/study/trained-shuffled ...]

Reads finished points only (a summary.json beside its predictions), so it can run while the study's
jobs (evals/sweep.py, evals/trained_sweep.py; commands in docs/study_latent_steps.md) are still going.
Writes OUT/results.md (tables: accuracy with 95% Wilson intervals; paired differences on the same
questions; accuracy by level) and its figures (accuracy vs m, the train-m x eval-m heatmap, reward
curves per training run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from latentrl.evaluation import rundir  # noqa: E402
from latentrl.evaluation.plots import draw_all, train_eval_heatmap, training_curve  # noqa: E402
from latentrl.evaluation.report import markdown_table  # noqa: E402
from latentrl.evaluation.stats import mean_interval, paired_difference, trend, wilson  # noqa: E402
from latentrl.tasks import get_task  # noqa: E402


def load_points(root: Path) -> list[dict]:
    """Finished points under root: each summary plus `correct` ({question id: bool}) and `pred` (the extracted
    answers) from its predictions."""
    points = []
    for path in sorted(root.rglob("summary.json")):
        summary = rundir.read_summary(path.parent)
        if summary is None:  # not a finished point: left out, said once
            print(f"study: {path} is not a run summary (rerun its point to rebuild it); left out", file=sys.stderr)
            continue
        rows = rundir.read_all(path.parent)
        correct, pred = ({i: r[k] for i, r in rows.items()} for k in ("correct", "pred"))
        points.append({"seeds": 1, **summary, "correct": correct, "pred": pred})
    return points


def label(p: dict) -> str:
    name = p["method"] if p["method"] == "single" else f"{p['method']} {p['topology']}"
    name += f" m={p['latent_steps']}" if p["method"] == "latent_mas" else ""
    return name if p.get("train_latent_steps") is None else f"{name} (GRPO at m={p['train_latent_steps']})"


def minus(p: dict, other: dict | None) -> str:
    """p's accuracy minus other's on the same questions, with its paired 95% interval; '-' without other."""
    if other is None:
        return "-"
    diff, (lo, hi), _ = paired_difference(p["correct"], other["correct"])
    return f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def differences(points: list[dict], against: dict, title: str) -> list[str]:
    """Rows of paired differences of `points` against one point."""
    lines = [f"**{title}**", "", "| point | acc | minus baseline | 95% CI (paired) |", "|---|---|---|---|"]
    for p in points:
        diff, (lo, hi), n = paired_difference(p["correct"], against["correct"])
        lines.append(f"| {label(p)} | {p['accuracy']:.3f} | {diff:+.3f} | [{lo:+.3f}, {hi:+.3f}] (n={n}) |")
    return lines + [""]


def between_adapters(trained: list[dict], adapters: list[int]) -> list[str]:
    """Each later adapter minus the first (lowest train m) at the same eval m; nothing with one adapter."""
    first = {p["latent_steps"]: p for p in trained if p["train_latent_steps"] == adapters[0]}
    lines = [f"**Each adapter minus the one trained at m={adapters[0]}, same eval m (paired 95% CI)**", "",
             "| point | difference |", "|---|---|"]  # fmt: skip
    for p in trained:
        if p["train_latent_steps"] != adapters[0] and p["latent_steps"] in first:
            lines.append(f"| {label(p)} | {minus(p, first[p['latent_steps']])} |")
    return lines + [""] if len(adapters) > 1 else []


def trends(curves: list[tuple[str, list[dict]]]) -> list[str]:
    """One row per curve (latent_mas points over m): the accuracy change per doubling of 1 + m."""
    lines = ["**Trend: accuracy change per doubling of 1 + m** (mean per-question least-squares slope on",
             "log2(1 + m), 95% t-interval over questions; one test per curve instead of one per m)", "",
             "| curve | m | change per doubling | 95% CI | n |", "|---|---|---|---|---|"]  # fmt: skip
    for name, pts in curves:
        runs = {p["latent_steps"]: p["correct"] for p in pts}
        if len(runs) > 2:
            slope, (lo, hi), n = trend(runs)
            ms = ", ".join(str(m) for m in sorted(runs))
            lines.append(f"| {name} | {ms} | {slope:+.4f} | [{lo:+.4f}, {hi:+.4f}] | {n} |")
    return lines + [""] if len(lines) > 5 else []  # no curve with three m or more: no trend to test


def by_level(points: list[dict]) -> list[str]:
    level = {e.id: e.meta["level"] for e in get_task("chains").load("offline", None)}
    levels = sorted(set(level.values()))
    lines = ["| point | " + " | ".join(f"level {lv}" for lv in levels) + " |", "|---" * (len(levels) + 1) + "|"]
    for p in points:
        cells = []
        for lv in levels:
            hits = [c for i, c in p["correct"].items() if level.get(i) == lv]
            lo, hi = wilson(sum(hits), len(hits))
            cells.append(f"{sum(hits) / max(1, len(hits)):.2f} [{lo:.2f}, {hi:.2f}]")
        lines.append(f"| {label(p)} | " + " | ".join(cells) + " |")
    return lines + [""]


def trained_vs_m(base: list[dict], trained: list[dict], out: Path) -> Path:
    """Accuracy vs eval m of the untrained pipeline and of each adapter, with 95% intervals."""
    fig, ax = plt.subplots(figsize=(6.4, 4))
    runs = [("untrained", base)] + [
        (f"GRPO at m={t}", [p for p in trained if p["train_latent_steps"] == t])
        for t in sorted({p["train_latent_steps"] for p in trained})
    ]
    for name, pts in runs:
        pts = sorted(pts, key=lambda p: p["latent_steps"])
        ms, acc = [p["latent_steps"] for p in pts], [p["accuracy"] for p in pts]
        lo, hi = [p["accuracy_ci95"][0] for p in pts], [p["accuracy_ci95"][1] for p in pts]
        err = [[a - low for a, low in zip(acc, lo)], [high - a for a, high in zip(acc, hi)]]
        ax.errorbar(ms, acc, yerr=err, marker="o", capsize=3, label=name)
    ax.set_xscale("symlog", linthresh=1)
    ms = sorted({p["latent_steps"] for _, pts in runs for p in pts})
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("eval latent steps m")
    return save(
        fig, ax, "chains: latent_mas sequential, before and after GRPO", out / "chains_trained_accuracy_vs_m.png"
    )


def save(fig, ax, title: str, path: Path) -> Path:
    """An accuracy figure's common finish: label, title, grid, legend, file."""
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def replicate(rep_dir: Path, base: list[dict], trained: list[dict]) -> list[str]:
    """A trained sweep of another training seed: each point against the untrained pipeline and against the
    main sweep's adapter of the same train m, at the same eval m (paired)."""
    points = sorted(load_points(rep_dir), key=lambda p: (p["train_latent_steps"], p["latent_steps"]))
    if not points:
        return []
    lines = [f"## Another training seed: {rep_dir.name}", "", markdown_table(points), "",
             "| point | minus untrained | minus the main sweep's adapter |", "|---|---|---|"]  # fmt: skip
    untrained = {b["latent_steps"]: b for b in base}
    main = {(t["train_latent_steps"], t["latent_steps"]): t for t in trained}
    for p in points:
        same = main.get((p["train_latent_steps"], p["latent_steps"]))
        lines.append(f"| {label(p)} | {minus(p, untrained.get(p['latent_steps']))} | {minus(p, same)} |")
    return lines + [""]


def real_memory(p: dict) -> bool:
    """A point whose pipeline (and, if trained, training) read its own memory: the curves over m."""
    return p.get("memory_control", "none") == "none" and p.get("train_memory_control") in (None, "none")


def control_groups(points: list[dict]) -> dict[tuple, list[dict]]:
    """Points that differ only in their memory control: the same topology, m, budget and adapter."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        key = (p["topology"], p["latent_steps"], p.get("max_new_tokens"), p.get("train_latent_steps"),
               p.get("train_memory_control"))  # fmt: skip
        groups.setdefault(key, []).append(p)
    return groups


CONTROL_ORDER = ("none", "shuffled", "noise", "pause", "no_memory")


def controls_figure(points: list[dict], out: Path) -> Path | None:
    """Accuracy under each memory control, grouped by pipeline (topology, m, budget, adapter), with 95% Wilson
    intervals; `no_memory` (the final agent alone, the same for every group) is drawn as a line."""
    latent = [p for p in points if p["method"] == "latent_mas"]
    alone = next((p for p in latent if p.get("memory_control") == "no_memory" and p.get("train_latent_steps") is None),
                 None)  # fmt: skip

    groups = {k: g for k, g in sorted(control_groups(latent).items(), key=group_order) if len(g) > 1}
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(groups)), 4))
    width = 0.8 / (len(CONTROL_ORDER) - 1)
    for j, ctrl in enumerate(CONTROL_ORDER[:-1]):
        xs, acc, err = [], [], [[], []]
        for x, pts in enumerate(groups.values()):
            p = next((q for q in pts if q.get("memory_control", "none") == ctrl), None)
            if p is not None:
                lo, hi = p["accuracy_ci95"]
                xs.append(x + (j - 1.5) * width)
                acc.append(p["accuracy"])
                err[0].append(p["accuracy"] - lo)
                err[1].append(hi - p["accuracy"])
        ax.bar(xs, acc, width, yerr=err, capsize=2, label="real memory" if ctrl == "none" else ctrl)
    if alone is not None:
        ax.axhline(alone["accuracy"], color="gray", linestyle="--", linewidth=1, label="final agent alone (no_memory)")
    names = [f"{t[:4]} m={m}" + ("" if b == 96 else f"\n{b} tokens")
             + ("" if tm is None else "\n" + training_label(tm, tc).replace(", ", "\n"))
             for t, m, b, tm, tc in groups]  # fmt: skip
    ax.set_xticks(range(len(groups)), names, fontsize=7)
    return save(fig, ax, "chains: latent_mas under memory-content controls", out / "chains_memory_controls.png")


def same_answers(p: dict, other: dict) -> str:
    """How many questions get the same extracted answer in both points: whether a control changes what is
    answered at all, which equal accuracies alone cannot tell."""
    shared = p["pred"].keys() & other["pred"].keys()
    return f"{sum(p['pred'][i] == other['pred'][i] for i in shared)}/{len(shared)}"


def group_order(item: tuple[tuple, list[dict]]) -> tuple:
    """Untrained groups first (sequential, then by m and budget), then adapters trained on real memory."""
    (topo, m, budget, train_m, train_ctrl), _ = item
    return train_m is not None, train_ctrl not in (None, "none"), -(train_m or 0), topo != "sequential", m, budget or 0


def controls(points: list[dict]) -> list[str]:
    """Per group, real memory (`none`) minus each control on the same questions, and `none` minus the final
    agent alone (`no_memory`, the same at every m): does the content of the memory matter?"""
    latent = [p for p in points if p["method"] == "latent_mas"]
    alone = next((p for p in latent if p.get("memory_control") == "no_memory" and p.get("train_latent_steps") is None),
                 None)  # fmt: skip
    lines = ["## Does the latent content matter? (real memory minus each control, paired 95% CI)", "",
             "| pipeline | budget | training | real memory acc | control | control acc | real minus control | "
             "same answer |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (topo, m, budget, train_m, train_ctrl), pts in sorted(control_groups(latent).items(), key=group_order):
        real = next((p for p in pts if p.get("memory_control", "none") == "none"), None)
        others = sorted((p for p in pts if p is not real and p.get("memory_control") != "no_memory"),
                        key=lambda p: CONTROL_ORDER.index(p["memory_control"]))  # fmt: skip
        if alone is not None and real is not None and train_m is None and alone.get("max_new_tokens") == budget:
            others.append(alone)
        training = "-" if train_m is None else training_label(train_m, train_ctrl)
        for p in others if real else []:
            lines.append(f"| {topo} m={m} | {budget} | {training} | {real['accuracy']:.3f} | {p['memory_control']} | "
                         f"{p['accuracy']:.3f} | {minus(real, p)} | {same_answers(real, p)} |")  # fmt: skip
    return [*lines, ""]


def m_effect(points: list[dict]) -> list[str]:
    """The gain of m over m = 0 with real memory and under each control that ran at m = 0 too, and the
    difference of the two gains per question: the part of the m effect that needs the memory's own content
    (untrained pipelines; paired, same questions)."""
    untrained = [p for p in points if p["method"] == "latent_mas" and p.get("train_latent_steps") is None]
    at = {(p["topology"], p.get("max_new_tokens"), p.get("memory_control", "none"), p["latent_steps"]): p
          for p in untrained}  # fmt: skip
    lines = ["## Does the gain with m need the memory's content? (untrained, paired 95% CI)", "",
             "| pipeline | budget | control | m | real: m minus m=0 | control: m minus m=0 | "
             "real's gain minus the control's |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for (topo, budget, ctrl, m), p in sorted(at.items(), key=str):
        real, real0, ctrl0 = (at.get((topo, budget, c, k)) for c, k in (("none", m), ("none", 0), (ctrl, 0)))
        if ctrl == "none" or m == 0 or None in (real, real0, ctrl0):
            continue
        ids = sorted(set.intersection(*(set(q["correct"]) for q in (real, real0, p, ctrl0))))
        c = {
            k: {i: float(q["correct"][i]) for i in ids}
            for k, q in (("r", real), ("r0", real0), ("c", p), ("c0", ctrl0))
        }
        diff, (lo, hi) = mean_interval([c["r"][i] - c["r0"][i] - c["c"][i] + c["c0"][i] for i in ids])
        lines.append(f"| {topo} | {budget} | {ctrl} | {m} | {minus(real, real0)} | {minus(p, ctrl0)} | "
                     f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}] |")  # fmt: skip
    return [*lines, ""] if len(lines) > 4 else []


def training_label(train_m: int, train_ctrl: str | None) -> str:
    return f"GRPO m={train_m}" + ("" if train_ctrl in (None, "none") else f", {train_ctrl} memory")


def training_gains(points: list[dict]) -> list[str]:
    """Each adapter evaluated under a memory control minus the untrained pipeline under the same control, and an
    adapter trained on a control's memory minus the one trained on real memory: does GRPO on latent rollouts
    learn to use the memory, or would it gain as much from a wrong one? (paired, same questions)"""
    latent = [p for p in points if p["method"] == "latent_mas"]

    def key(p: dict) -> tuple:
        return p["topology"], p["latent_steps"], p.get("max_new_tokens"), p.get("memory_control", "none")

    untrained = {key(p): p for p in latent if p.get("train_latent_steps") is None}
    real_trained = {(*key(p), p["train_latent_steps"]): p for p in latent if p.get("train_latent_steps") is not None
                    and p.get("train_memory_control") in (None, "none")}  # fmt: skip
    trained = sorted((p for p in latent if p.get("train_latent_steps") is not None),
                     key=lambda p: (str(p.get("train_memory_control")), p["train_latent_steps"], key(p)))  # fmt: skip
    if not trained:
        return []
    lines = ["## Does GRPO learn to use the memory? (paired 95% CI)", "",
             "| adapter | pipeline | eval memory | acc | minus untrained (same memory) | "
             "minus the adapter trained on real memory |", "|---|---|---|---|---|---|"]  # fmt: skip
    for p in trained:
        ctrl = p.get("train_memory_control")
        real = None if ctrl in (None, "none") else real_trained.get((*key(p), p["train_latent_steps"]))
        lines.append(f"| {training_label(p['train_latent_steps'], ctrl)} | {p['topology']} m={p['latent_steps']} | "
                     f"{key(p)[3]} | {p['accuracy']:.3f} | {minus(p, untrained.get(key(p)))} | "
                     f"{minus(p, real)} |")  # fmt: skip
    return [*lines, ""]


def write(
    zero_dir: Path,
    trained_dir: Path,
    out: Path,
    title: str = "Study results",
    replicates: tuple[Path, ...] = (),
    control_dirs: tuple[Path, ...] = (),
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    order = {"single": 0, "text_mas": 1, "latent_mas": 2}
    zero = sorted((p for p in (load_points(zero_dir) if zero_dir.exists() else []) if real_memory(p)),
                  key=lambda p: (order[p["method"]], p["topology"], p["latent_steps"]))  # fmt: skip
    every_trained = load_points(trained_dir) if trained_dir.exists() else []
    with_controls = [p for d in control_dirs if d.exists() for p in load_points(d)] + every_trained
    trained = sorted((p for p in every_trained if real_memory(p)),
                     key=lambda p: (p["train_latent_steps"], p["latent_steps"]))  # fmt: skip
    lines = [f"# {title} (generated by evals/study.py; do not edit)", ""]
    figures = draw_all(zero, out) if zero else []
    if zero:
        lines += ["## Zero training", "", markdown_table(zero), ""]
        single = next((p for p in zero if p["method"] == "single"), None)
        latent = [p for p in zero if p["method"] != "single"]
        if single:
            lines += differences(latent, single, "Each point minus single (same 300 questions)")
        for topo in ("sequential", "hierarchical"):
            pts = [p for p in zero if p["method"] == "latent_mas" and p["topology"] == topo]
            m0 = next((p for p in pts if p["latent_steps"] == 0), None)
            if m0 and len(pts) > 1:
                lines += differences([p for p in pts if p is not m0], m0, f"latent_mas {topo}: each m minus m=0")
        curves = [(f"latent_mas {t}", [p for p in zero if p["method"] == "latent_mas" and p["topology"] == t])
                  for t in ("sequential", "hierarchical")]  # fmt: skip
        lines += trends(curves)
        lines += ["## Accuracy by level (number of operations)", "", *by_level(zero)]
    base = [p for p in zero if p["method"] == "latent_mas" and p["topology"] == "sequential"]
    budgets, have = {p.get("max_new_tokens") for p in trained}, {p["latent_steps"] for p in base}
    base += [p for p in with_controls if real_memory(p) and p.get("train_latent_steps") is None  # untrained
             and p["method"] == "latent_mas" and p["topology"] == "sequential" and p["latent_steps"] not in have
             and p.get("max_new_tokens") in budgets]  # fmt: skip
    if trained:
        lines += ["## After GRPO (latent_mas sequential; adapter trained at train m, evaluated at eval m)", ""]
        lines += [markdown_table(trained), ""]
        untrained = {b["latent_steps"]: b for b in base}
        lines += ["**Trained minus untrained at the same eval m (paired 95% CI)**", "", "| point | gain |", "|---|---|"]
        lines += [f"| {label(p)} | {minus(p, untrained.get(p['latent_steps']))} |" for p in trained] + [""]
        adapters = sorted({p["train_latent_steps"] for p in trained})
        lines += between_adapters(trained, adapters)
        lines += trends([(f"GRPO at m={t}", [p for p in trained if p["train_latent_steps"] == t]) for t in adapters])
        lines += ["## Accuracy by level, trained", "", *by_level(trained)]
        figures += [train_eval_heatmap(trained, out, base), trained_vs_m(base, trained, out)]
    for rep_dir in replicates:
        lines += replicate(rep_dir, base, trained)
    if control_dirs:
        lines += controls(with_controls) + m_effect(with_controls) + training_gains(with_controls)
        figures += [f] if (f := controls_figure(with_controls, out)) else []
    for sweep in dict.fromkeys((trained_dir, *replicates, *control_dirs)):  # each training run once
        for run in sorted(sweep.glob("train-m*/adapter")) if sweep.exists() else []:
            name = run.parent.name if sweep == trained_dir else f"{sweep.name}-{run.parent.name}"
            try:
                figures.append(training_curve(run, out / f"training_{name}.png", title=name))
            except FileNotFoundError:
                pass  # a training that has not logged a step yet
    lines += [f"![{f.stem}]({f.name})" for f in figures]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--zero", default="runs/study/zero", help="the zero-training sweep's output")
    ap.add_argument("--trained", default="runs/study/trained", help="the trained sweep's output")
    ap.add_argument("--out", default="docs/study", help="where results.md and the figures go")
    ap.add_argument("--title", default="Study results", help="results.md's heading")
    ap.add_argument("--replicate", nargs="*", default=[], help="trained sweeps of other training seeds")
    ap.add_argument("--controls", nargs="*", default=[], help="sweeps with memory controls (zero or trained)")
    args = ap.parse_args()
    if not any(Path(d).rglob("summary.json") for d in (args.zero, args.trained, *args.controls) if Path(d).is_dir()):
        raise SystemExit(f"study: error: no finished point under {args.zero} or {args.trained} (run the study first)")
    if missing := [d for d in args.replicate if not Path(d).is_dir()]:
        raise SystemExit(f"study: error: no such replicate directory: {', '.join(missing)}")
    reps, ctrls = tuple(Path(d) for d in args.replicate), tuple(Path(d) for d in args.controls)
    print(f"wrote {write(Path(args.zero), Path(args.trained), Path(args.out), args.title, reps, ctrls)}")


if __name__ == "__main__":
    main()
