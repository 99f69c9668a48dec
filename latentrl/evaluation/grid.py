"""Grids of evaluations: tasks x methods x topologies x latent steps x memory controls x budgets x seeds,
one directory per point; `plan` turns a mapping (CLI flags, a sweep file, a trained sweep's `eval`) into
validated points."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from latentrl.evaluation.config import EvalConfig

AXES = ("task", "method", "topology", "latent_steps", "memory_control", "max_new_tokens", "seed")


def normalized(cfg: EvalConfig) -> EvalConfig:
    """Drop axes a method ignores (single: topology, m and memory control; text_mas: m and memory control;
    latent_mas no_memory: m), so equal runs get equal configs."""
    if cfg.method == "single":
        return dataclasses.replace(cfg, topology="sequential", latent_steps=0, memory_control="none")
    if cfg.method == "text_mas":
        return dataclasses.replace(cfg, latent_steps=0, memory_control="none")
    if cfg.memory_control == "no_memory":
        return dataclasses.replace(cfg, topology="sequential", latent_steps=0)
    return cfg


def point_dir(cfg: EvalConfig) -> str:
    name = cfg.method
    if cfg.method != "single":
        name += f"-{cfg.topology}"
    if cfg.method == "latent_mas":
        name += f"-m{cfg.latent_steps}"
        name += "" if cfg.memory_control == "none" else f"-{cfg.memory_control}"
    if cfg.max_new_tokens != EvalConfig.max_new_tokens:
        name += f"-t{cfg.max_new_tokens}"
    return f"{cfg.task}/{name}-s{cfg.seed}"


def expand(base: EvalConfig, values: dict[str, list], nest: bool = False) -> list[EvalConfig]:
    """Every distinct point of the grid, each in `base.output`/<task>/<point>.

    A lone point runs in `base.output` itself unless `nest`: sweep files nest always, so a sweep narrowed to
    one point (to finish it first) resumes in the directory the full grid uses.
    """
    unknown = set(values) - set(AXES)
    if unknown:
        raise ValueError(f"not grid axes: {sorted(unknown)}; axes are {AXES}")
    points: dict[tuple, EvalConfig] = {}
    for combo in itertools.product(*(values.get(axis) or [getattr(base, axis)] for axis in AXES)):
        cfg = normalized(dataclasses.replace(base, **dict(zip(AXES, combo))))
        points.setdefault(tuple(getattr(cfg, a) for a in AXES), cfg)
    if len(points) == 1 and not nest:
        return list(points.values())
    return [dataclasses.replace(c, output=str(Path(base.output) / point_dir(c))) for c in points.values()]


def plan(config: dict, nest: bool = True) -> list[EvalConfig]:
    """The validated points of a mapping of `latentrl eval` options, where each axis may be a list.

    `grids`: a list of mappings, each merged over the rest and expanded on its own (the union of their
    points, in order), for designs that are not one full product (e.g. controls only at some m). Unknown
    keys are refused with the list of valid ones; every point is validated before any model loads."""
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    config = dict(config)
    grids = config.pop("grids", None) or [{}]
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise ValueError("grids must be a list of mappings of eval options")
    points: dict[str, EvalConfig] = {}
    for grid in grids:
        merged = {**config, **grid}
        unknown = set(merged) - fields
        if unknown:
            raise ValueError(f"unknown sweep keys {sorted(unknown)}; valid keys: {sorted(fields)}")
        axes = {k: v if isinstance(v, list) else [v] for k, v in merged.items() if k in AXES}
        base = EvalConfig(**{k: v for k, v in merged.items() if k not in AXES})
        if base.wandb and not base.wandb_group:
            base = dataclasses.replace(base, wandb_group=Path(base.output).name)
        for p in expand(base, axes, nest=nest or len(grids) > 1):
            points.setdefault(p.output, p)
    for p in points.values():
        p.validate()
    return list(points.values())
