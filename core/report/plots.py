"""The report's plots (matplotlib, Agg backend, imported when drawn), as PNG bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..comparison.record import read_metrics


@dataclass
class Plot:
    """One figure: a file name (``plots/<name>.png`` next to report.md), a caption and the PNG bytes."""

    name: str
    caption: str
    png: bytes


def curve_metric(task: str) -> tuple[str, str]:
    """The per-step metric the curves show: the training loss, or the mean reward for rl."""
    return ("reward_mean", "mean reward") if task == "rl" else ("loss", "training loss")


def curves(out: Path, record: dict[str, Any]) -> dict[str, list[tuple[int, int | None, float]]]:
    """backend -> [(step, examples seen, value)] read from each run's metrics.jsonl."""
    key, _ = curve_metric(record["spec"]["task"])
    series: dict[str, list[tuple[int, int | None, float]]] = {}
    for b in record["backends"]:
        if not b.get("run_dir"):
            continue
        batch = b.get("effective_batch_size")
        points = [(int(r["step"]), int(r["step"]) * batch if batch else None, float(r[key]))
                  for r in read_metrics(out / b["run_dir"]) if isinstance(r.get(key), int | float)]
        if points:
            series[b["name"]] = points
    return series


def eval_metric(task: str) -> tuple[str, str]:
    """The neutral-evaluation figure the bar chart shows."""
    return {"sft": ("loss", "held-out loss (lower is better)"),
            "reward": ("accuracy", "held-out pairwise accuracy (higher is better)"),
            "preference": ("accuracy", "held-out share of pairs the policy prefers rightly (higher is better)")}.get(
        task, ("reward_mean", "held-out mean reward (higher is better)"))


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def draw(out: Path, record: dict[str, Any]) -> list[Plot]:
    """The curves (against step and against examples seen) and the neutral-evaluation bar chart."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    task = record["spec"]["task"]
    plots: list[Plot] = []
    _, label = curve_metric(task)
    series = curves(out, record)
    if series:
        fig, (by_step, by_examples) = plt.subplots(1, 2, figsize=(11, 4))
        for name, points in series.items():
            by_step.plot([p[0] for p in points], [p[2] for p in points], marker=".", label=name)
            seen = [(p[1], p[2]) for p in points if p[1] is not None]
            if seen:
                by_examples.plot([s[0] for s in seen], [s[1] for s in seen], marker=".", label=name)
        by_step.set(xlabel="optimizer step", ylabel=label, title=f"{label} by step")
        by_examples.set(xlabel="examples seen (step x effective batch size)", ylabel=label,
                        title=f"{label} by examples seen")
        for ax in (by_step, by_examples):
            ax.grid(alpha=0.3)
            ax.legend()
        plots.append(Plot("curves", f"{label} of every backend, by step and by examples seen", _png(fig)))
    key, title = eval_metric(task)
    bars = [("base model", (record.get("baseline") or {}).get(key))]
    bars += [(b["name"], (b.get("eval") or {}).get(key)) for b in record["backends"] if b["status"] == "completed"]
    bars = [(n, v) for n, v in bars if isinstance(v, int | float)]
    if bars:
        fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(bars) + 2), 3.6))
        order = [n for n in series] + [b["name"] for b in record["backends"] if b["name"] not in series]
        colours = ["#999999" if n == "base model" else f"C{order.index(n)}" for n, _ in bars]
        drawn = ax.bar([n for n, _ in bars], [v for _, v in bars], color=colours)
        ax.bar_label(drawn, fmt="%.4g")
        ax.set(ylabel=key, title=f"neutral evaluation: {title}")
        ax.grid(axis="y", alpha=0.3)
        plots.append(Plot("eval", f"neutral evaluation on {record['eval']['examples']} held-out examples: {title}",
                          _png(fig)))
    return plots


def _label(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def draw_sweep(out: Path, record: dict[str, Any]) -> list[Plot]:
    """A sweep's plots: every trial's training curve on one figure, and the metric against each parameter."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    task = record.get("task") or (record.get("spec") or {}).get("task", "sft")
    key, label = curve_metric(task)
    trials = record.get("trials") or []
    plots: list[Plot] = []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = 0
    for t in trials:
        if not t.get("run_dir"):
            continue
        points = [(int(r["step"]), float(r[key])) for r in read_metrics(out / t["run_dir"])
                  if isinstance(r.get(key), int | float)]
        if points:
            params = ", ".join(f"{k.rsplit('.', 1)[-1]}={_label(v)}" for k, v in (t.get("params") or {}).items())
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=f"{t['id']} ({params})")
            drawn += 1
    if drawn:
        ax.set(xlabel="optimizer step", ylabel=label, title=f"{label} of every trial")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        plots.append(Plot("curves", f"{label} of every trial, by step", _png(fig)))
    else:
        plt.close(fig)
    metric = record.get("metric")
    scored = [t for t in trials if t.get("status") == "completed"
              and isinstance((t.get("metrics") or {}).get(metric), int | float)]
    params = record.get("params") or []
    if scored and params:
        fig, axes = plt.subplots(1, len(params), figsize=(4.5 * len(params), 3.8), squeeze=False)
        for ax, p in zip(axes[0], params, strict=True):
            xs = [(t.get("params") or {}).get(p["key"]) for t in scored]
            ys = [float(t["metrics"][metric]) for t in scored]
            numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
            if numeric:
                ax.scatter(xs, ys)
                positive = [x for x in xs if x > 0]
                if p["kind"] == "loguniform" or (len(positive) == len(xs) and max(xs) >= 10 * min(xs)):
                    ax.set_xscale("log")
            else:
                names = list(dict.fromkeys(_label(x) for x in xs))
                ax.scatter([names.index(_label(x)) for x in xs], ys)
                ax.set_xticks(range(len(names)), names, rotation=20)
            ax.set(xlabel=p["key"], ylabel=metric, title=f"{metric} by {p['key']}")
            ax.grid(alpha=0.3)
        plots.append(Plot("metric", f"{metric} of each completed trial against each parameter "
                                    f"({record.get('mode')} is best)", _png(fig)))
    return plots
