"""`forge report`: compare runs from their run directories alone, offline.

Writes into one folder:
    curves.png    training loss, evaluation loss and (where the task reports one during
                  training) the evaluation metric against the step, one line per run
    report.md     the table and the figure, for a README or a pull request
    report.html   the same, self-contained (the figure embedded), for a browser

The table: per run its mode, task, model, last step, and the task's main metric
before training, after it, and of the teacher (KD runs). Runs evaluated by lm-evaluation-
harness (an `eval:` block) get a second table of its numbers after training, one column a
task's metric.

Runs whose configs differ only in `seed` (a sweep's seeds, or hand-written replicas) form a
point: a second table gives each point's values of the keys that differ between points, and
the main metric's mean ± std (sample std) over its complete runs, with n (and so for each
lm-eval metric); `points.png` plots
the metric against each of those keys. The best point beats the second only when their
mean ± std intervals do not overlap; the report says which. Curves come from
metrics/steps.jsonl (forge/run/steplog.py), or for runs made before it existed, from
the `step N/M key=value ...` lines of output.log (a later line for a step wins).
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge import harness
from forge.config import to_dict, validate
from forge.config.loader import load_stored, read_yaml
from forge.errors import ForgeError
from forge.run import steplog
from forge.run.layout import RunDir
from forge.status import Metric, RunStatus, display_name, main_metric, status_of

_LOG_LINE = re.compile(r"forge\.train: step (\d+)/\d+ (.*)$")


@dataclass
class RunReport:
    name: str
    status: RunStatus
    teacher: float | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flat: dotted key -> value, from config.yaml
    lm_eval: dict[str, float] = field(default_factory=dict)  # "task/metric" -> after training


@dataclass
class Point:
    values: dict[str, Any]  # the keys that differ between points -> this point's values
    runs: list[RunReport]

    @property
    def scores(self) -> list[float]:
        return [r.status.post for r in self.runs if r.status.post is not None]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.scores) if len(self.scores) > 1 else None

    def spread_of(self, lm_eval_metric: str) -> str:
        """An lm-eval metric's mean ± std over the point's complete runs that have it."""
        values = [
            r.lm_eval[lm_eval_metric] for r in self.runs if r.status.post is not None and lm_eval_metric in r.lm_eval
        ]
        if not values:
            return "-"
        return f"{statistics.fmean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def step_records(run: RunDir) -> list[dict]:
    records = steplog.read(run)
    if records or not run.log.exists():
        return records
    by_step: dict[int, dict] = {}
    for line in run.log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _LOG_LINE.search(line)
        if not match:
            continue
        values = {}
        for pair in match.group(2).split():
            key, _, value = pair.partition("=")
            try:
                values[key] = float(value)
            except ValueError:
                continue
        by_step.setdefault(int(match.group(1)), {}).update(values)
    return [{"step": step, **values} for step, values in sorted(by_step.items())]


def curves_of(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """name -> [(step, value)], one value per step (the last logged)."""
    curves: dict[str, dict[int, float]] = {}
    for record in records:
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                curves.setdefault(key, {})[record["step"]] = float(value)
    return {key: sorted(points.items()) for key, points in curves.items()}


def collect(roots: list[Path], cwd: Path) -> list[RunReport]:
    reports = []
    for root in roots:
        status = status_of(root)
        metric = Metric(status.metric_split, status.metric, status.larger_is_better) if status.metric else None
        teacher = main_metric(root, "teacher_pre_eval", metric)
        curves = curves_of(step_records(RunDir(root)))
        name, config = display_name(root, cwd), _flat_config(RunDir(root))
        reports.append(RunReport(name, status, teacher, curves, config, lm_eval_scores(RunDir(root))))
    return reports


def lm_eval_scores(run: RunDir) -> dict[str, float]:
    """lm-evaluation-harness's numbers after training (metrics/post_eval.json, forge/harness.py):
    "task/metric" -> value, lm-eval's metric name without its filter when that is "none"; no
    standard errors."""
    try:
        data = json.loads((run.metrics / "post_eval.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    scores = {}
    for entry, values in data.items() if isinstance(data, dict) else ():
        if not entry.startswith(harness.PREFIX) or not isinstance(values, dict):
            continue
        for key, value in values.items():
            if (
                key != "samples"
                and "_stderr" not in key
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                scores[f"{entry.removeprefix(harness.PREFIX)}/{key.removesuffix(',none')}"] = float(value)
    return scores


def _lm_eval_metrics(reports: list[RunReport]) -> list[str]:
    return list(dict.fromkeys(key for r in reports for key in r.lm_eval))


def lm_eval_table(reports: list[RunReport]) -> list[dict[str, str]]:
    """One row a run, one column an lm-eval metric; empty when no run has any."""
    metrics = _lm_eval_metrics(reports)
    if not metrics:
        return []
    return [{"run": r.name, **{m: _number(r.lm_eval.get(m)) for m in metrics}} for r in reports]


def _flat_config(run: RunDir) -> dict[str, Any]:
    """The run's config.yaml, flat, with every default filled in (a run made before forge had a
    key then compares equal to one that has it at its default); as written if it no longer
    validates."""
    try:
        data = read_yaml(run.config)
    except ForgeError:
        return {}
    with contextlib.suppress(ForgeError):
        data = to_dict(validate(load_stored(run.config), check_upstream=False))
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(data, "")
    return flat


NOT_A_POINT = ("run_name", "seed")  # what may differ between the runs of one point


def points(reports: list[RunReport]) -> list[Point]:
    """Runs grouped into points (configs equal but for NOT_A_POINT), in the runs' order, each with
    the values of the keys that differ between points. Empty when no point has two runs and the
    runs are not one sweep's (there is nothing to aggregate)."""
    groups: dict[str, list[RunReport]] = {}
    for r in reports:
        same = {k: v for k, v in r.config.items() if k not in NOT_A_POINT}
        groups.setdefault(json.dumps(same, sort_keys=True, default=str), []).append(r)
    one_sweep = len({r.status.sweep for r in reports}) == 1 and reports[0].status.sweep is not None
    if len(reports) < 2 or not (one_sweep or any(len(g) > 1 for g in groups.values())):
        return []
    configs = [g[0].config for g in groups.values()]
    keys = [k for k in configs[0] if k not in NOT_A_POINT and any(c.get(k) != configs[0][k] for c in configs)]
    keys += sorted({k for c in configs for k in c} - set(configs[0]) - set(NOT_A_POINT))
    return [Point({k: g[0].config.get(k) for k in keys}, g) for g in groups.values()]


def _short(keys: list[str]) -> dict[str, str]:
    """Column names: each key's last part, or the whole key when two share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: name if last.count(name) == 1 else k for k, name in zip(keys, last, strict=True)}


def points_table(found: list[Point]) -> list[dict[str, str]]:
    keys = list(found[0].values)
    short = _short(keys)
    out = []
    for p in found:
        row = {short[k]: _value(p.values[k]) for k in keys}
        spread = f" ± {p.std:.4f}" if p.std is not None else ""
        row.update(
            metric=p.runs[0].status.metric or "-",
            n=f"{len(p.scores)}" + (f" of {len(p.runs)}" if len(p.scores) < len(p.runs) else ""),
            post=f"{p.mean:.4f}{spread}" if p.mean is not None else "-",
        )
        row.update({m: p.spread_of(m) for m in _lm_eval_metrics([r for q in found for r in q.runs])})
        out.append(row)
    return out


def _value(value: Any) -> str:
    """A config value as YAML spells it (true, not True); an unset one as '-'."""
    return "-" if value is None else json.dumps(value) if isinstance(value, (bool, list, dict)) else str(value)


def verdict(found: list[Point]) -> str | None:
    """Which point is best on the main metric, and whether it beats the second by more than
    the seeds' spread (their mean ± std intervals do not overlap)."""
    scored = [p for p in found if p.mean is not None]
    if len(scored) < 2:
        return None
    larger = scored[0].runs[0].status.larger_is_better
    larger = True if larger is None else larger
    best, second = sorted(scored, key=lambda p: p.mean, reverse=larger)[:2]

    def name(p: Point) -> str:
        return ", ".join(f"{k}={_value(v)}" for k, v in p.values.items()) or p.runs[0].name

    def shown(p: Point) -> str:
        return f"{p.mean:.4f}" + (f" ± {p.std:.4f}" if p.std is not None else "") + f" (n={len(p.scores)})"

    head = f"best: {name(best)}: {shown(best)}; second: {name(second)}: {shown(second)}"
    if best.std is None or second.std is None:
        return f"{head}; no spread to compare (fewer than two complete seeds a point)"
    gap, spread = abs(best.mean - second.mean), best.std + second.std
    if gap > spread:
        return f"{head}; the best beats the second by {gap:.4f}, more than the seeds' spread ({spread:.4f})"
    return f"{head}; the difference ({gap:.4f}) is within the seeds' spread ({spread:.4f}): not a clear winner"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(reports: list[RunReport]) -> list[dict[str, str]]:
    out = []
    for r in reports:
        s = r.status
        out.append(
            {
                "run": r.name,
                "mode": s.mode or "?",
                "task": s.task or "?",
                "model": s.model or "?",
                "state": s.state,
                "step": f"{s.step if s.step is not None else '-'}",
                "metric": s.metric or "-",
                "pre": _number(s.pre),
                "post": _number(s.post),
                "teacher": _number(r.teacher),
            }
        )
    return out


PANELS = (("loss", "training loss"), ("eval_loss", "evaluation loss"))


def plot(reports: list[RunReport], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({f"eval_{r.status.metric}" for r in reports if f"eval_{r.status.metric}" in r.curves})
    panels = [*PANELS, *((m, m.removeprefix("eval_") + " during training") for m in metrics)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for r in reports:
            points = r.curves.get(key)
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, marker="o" if len(points) < 8 else None, markersize=3, label=r.name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0][1].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(labels) - 1) // 3), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_points(found: list[Point], path: Path) -> None:
    """The main metric (mean ± std over seeds, each run a dot) against each swept key; one line per
    combination of the other keys' values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(found[0].values) or ["point"]
    metric = found[0].runs[0].status.metric or "metric"
    if len(keys) > 2:  # keys swept together (tied) or a wide grid: one panel, a column per point
        _plot_points_side_by_side(plt, found, keys, metric, path)
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = [p.values.get(key, i) for i, p in enumerate(found)]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ticks = list(dict.fromkeys(map(_value, values)))  # categories, in the points' order
        series: dict[str, list[tuple[float, Point]]] = {}
        for p, v in zip(found, values, strict=True):
            rest = ", ".join(f"{k}={_value(x)}" for k, x in p.values.items() if k != key)
            series.setdefault(rest, []).append((float(v) if numeric else ticks.index(_value(v)), p))
        for label, members in series.items():
            members.sort(key=lambda m: m[0])
            xs = [x for x, p in members if p.mean is not None]
            means = [p.mean for _, p in members if p.mean is not None]
            stds = [p.std or 0.0 for _, p in members if p.mean is not None]
            line = ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label or None)
            for x, p in members:
                ax.scatter([x] * len(p.scores), p.scores, s=8, alpha=0.5, color=line[0].get_color())
        if not numeric:
            ax.set_xticks(range(len(ticks)), ticks, rotation=30, fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_points_side_by_side(plt, found: list[Point], keys: list[str], metric: str, path: Path) -> None:
    short = _short(keys)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(found)), 4.4))
    for i, p in enumerate(found):
        if p.mean is not None:
            ax.errorbar([i], [p.mean], yerr=[p.std or 0.0], marker="o", capsize=3, color="C0")
        ax.scatter([i] * len(p.scores), p.scores, s=8, alpha=0.5, color="C0")
    labels = ["\n".join(f"{short[k]}={_value(p.values[k])}" for k in keys) for p in found]
    ax.set_xticks(range(len(found)), labels, fontsize=7)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row[c].replace("|", "\\|") for c in head) + " |" for row in rows]


Rows = list[dict[str, str]]


LM_EVAL_HEADING = "lm-evaluation-harness after training"


def markdown(rows: Rows, figure: str, sweep: tuple[Rows, str | None, str] | None = None, lm_eval: Rows = ()) -> str:
    text = "# forge report\n\n" + "\n".join(_md_table(rows)) + f"\n\n![curves]({figure})\n"
    if lm_eval:
        text += f"\n## {LM_EVAL_HEADING}\n\n" + "\n".join(_md_table(list(lm_eval))) + "\n"
    if sweep is not None:
        point_rows, said, points_figure = sweep
        text += "\n## Points (mean ± std over seeds)\n\n" + "\n".join(_md_table(point_rows)) + "\n"
        text += (f"\n{said}\n" if said else "") + f"\n![points]({points_figure})\n"
    return text


def _html_table(rows: list[dict[str, str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(alt: str, png: bytes) -> str:
    return f"<p><img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'></p>"


def page(rows: Rows, png: bytes, sweep: tuple[Rows, str | None, bytes] | None = None, lm_eval: Rows = ()) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}"
    )
    body = f"<h1>forge report</h1>{_html_table(rows)}{_img('curves', png)}"
    if lm_eval:
        body += f"<h2>{LM_EVAL_HEADING}</h2>{_html_table(list(lm_eval))}"
    if sweep is not None:
        point_rows, said, points_png = sweep
        body += f"<h2>Points (mean ± std over seeds)</h2>{_html_table(point_rows)}"
        body += (f"<p>{html.escape(said)}</p>" if said else "") + _img("points", points_png)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>forge report</title><style>{style}</style>"
        f"</head><body>{body}</body></html>\n"
    )


def write(reports: list[RunReport], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = table(reports)
    files = {"png": out / "curves.png", "md": out / "report.md", "html": out / "report.html"}
    plot(reports, files["png"])
    found = points(reports)
    md_sweep = html_sweep = None
    if found:
        files["points"] = out / "points.png"
        plot_points(found, files["points"])
        point_rows, said = points_table(found), verdict(found)
        md_sweep = (point_rows, said, files["points"].name)
        html_sweep = (point_rows, said, files["points"].read_bytes())
    lm_eval = lm_eval_table(reports)
    files["md"].write_text(markdown(rows, files["png"].name, md_sweep, lm_eval), encoding="utf-8")
    files["html"].write_text(page(rows, files["png"].read_bytes(), html_sweep, lm_eval), encoding="utf-8")
    return files
