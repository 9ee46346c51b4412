"""`forge report`: compare runs from their run directories alone, offline.

Writes into one folder:
    curves.png    training loss, evaluation loss and (where the task reports one during
                  training) the evaluation metric against the step, one line per run
    report.md     the table and the figure, for a README or a pull request
    report.html   the same, self-contained (the figure embedded), for a browser

The table: per run its mode, task, model, last step, and the task's main metric
before training, after it, and of the teacher (KD runs). Curves come from
metrics/steps.jsonl (forge/run/steplog.py), or for runs made before it existed, from
the `step N/M key=value ...` lines of output.log (a later line for a step wins).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from forge import tasks
from forge.run import steplog
from forge.run.layout import RunDir
from forge.status import RunStatus, display_name, main_metric, status_of

_LOG_LINE = re.compile(r"forge\.train: step (\d+)/\d+ (.*)$")


@dataclass
class RunReport:
    name: str
    status: RunStatus
    teacher: float | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


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
        teacher = main_metric(root, "teacher_pre_eval", tasks.main_metric(status.task))
        curves = curves_of(step_records(RunDir(root)))
        reports.append(RunReport(display_name(root, cwd), status, teacher, curves))
    return reports


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


def markdown(rows: list[dict[str, str]], figure: str) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row[c].replace("|", "\\|") for c in head) + " |" for row in rows]
    return "# forge report\n\n" + "\n".join(lines) + f"\n\n![curves]({figure})\n"


def page(rows: list[dict[str, str]], png: bytes) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    image = base64.b64encode(png).decode()
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>forge report</title><style>{style}</style>"
        f"</head><body><h1>forge report</h1><table><tr>{head}</tr>{body}</table>"
        f"<p><img alt='curves' src='data:image/png;base64,{image}'></p></body></html>\n"
    )


def write(reports: list[RunReport], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows = table(reports)
    files = {"png": out / "curves.png", "md": out / "report.md", "html": out / "report.html"}
    plot(reports, files["png"])
    files["md"].write_text(markdown(rows, files["png"].name), encoding="utf-8")
    files["html"].write_text(page(rows, files["png"].read_bytes()), encoding="utf-8")
    return files
