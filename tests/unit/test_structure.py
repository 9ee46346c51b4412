"""forge's shape: no import cycle, no module importing one on a higher floor, no task named
outside forge/tasks/, and a task added from outside forge runs end to end."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, write_config

PACKAGE = ROOT / "forge"

# From the bottom up; a module may import its own floor or lower ones, never a higher one.
FLOORS = [
    # foundations and pure functions
    {
        "forge",
        "forge.errors",
        "forge.home",
        "forge.signals",
        "forge.distributed",
        "forge.logs",
        "forge.losses",
        "forge.rewards",
        "forge.ocr_metrics",
        "forge.launch",
        "forge.refs",
    },  # fmt: skip
    {"forge.embedded", "forge.hub"},  # artifacts forge builds, and the Hub
    {"forge.models"},  # loading models
    {"forge.tasks"},  # what each task reads, loads and grades, and supports
    {"forge.config"},  # configs, validated against the tasks
    {"forge.run", "forge.tracking"},  # the run directory's state machine, and its W&B run
    {"forge.kd_cache", "forge.callbacks", "forge.evaluation", "forge.trainers", "forge.slurm"},
    {"forge.stages"},
    {"forge.pipeline", "forge.workflow", "forge.status", "forge.report", "forge.doctor"},
    {"forge.cli", "forge.__main__"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """forge modules `name` imports anywhere (functions included), except under TYPE_CHECKING."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def floor_of(module: str) -> int:
    best = None
    for i, floor in enumerate(FLOORS):
        for prefix in floor:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[1]):
                best = (i, len(prefix))
    assert best is not None, f"{module} is on no floor: add it to FLOORS"
    return best[0]


def test_forge_imports_no_module_that_imports_it_back():
    edges = graph()
    cycles, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_imports_one_on_a_higher_floor():
    upward = [
        f"{a} (floor {floor_of(a)}) imports {b} (floor {floor_of(b)})"
        for a, targets in graph().items()
        for b in targets
        if floor_of(b) > floor_of(a)
    ]
    assert not upward, "\n".join(upward)


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two tests above can fail: a planted cycle and a planted upward import are found."""
    known = {"forge.a": tmp_path / "a.py", "forge.b": tmp_path / "b.py", "forge.errors": tmp_path / "e.py"}
    known["forge.a"].write_text("def f():\n    from forge import b\n")
    known["forge.b"].write_text(
        "import forge.a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import forge.errors\n"
    )
    known["forge.errors"].write_text("from forge.run import session\n")
    assert imports("forge.a", known["forge.a"], known) == {"forge.b"}
    assert imports("forge.b", known["forge.b"], known) == {"forge.a"}  # TYPE_CHECKING imports do not count
    assert floor_of("forge.run.session") > floor_of("forge.errors")


def test_no_task_is_named_outside_forge_tasks():
    from forge import tasks

    names = set(tasks.names())
    found = []
    for module, path in modules().items():
        # forge.embedded's generated copies of Hub datasets keep the Hub's config names (GLUE's "mnli")
        if module.startswith(("forge.tasks", "forge.embedded")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


@pytest.fixture
def toy_task(monkeypatch):
    from forge import tasks

    monkeypatch.setitem(tasks.TASKS, "toy", "tests.toy_task")
    return "toy"


def toy_config(folder: Path, extra: str = "") -> Path:
    path = write_config(
        folder,
        "toy.yaml",
        f"""
        output_root: {folder / "outputs"}
        task:
          name: toy
          dataset: embedded:synthetic-glue
          max_length: 32
          max_train_samples: 256
          max_eval_samples: 100
        student:
          name: tiny
          path: embedded:tiny-distilbert
        training:
          max_steps: 8
          batch_size: 16
          save_steps: 4
          logging_steps: 4
        """,
    )
    path.write_text(path.read_text() + extra)
    return path


def test_a_task_from_outside_forge_validates_and_is_refused_what_it_does_not_support(toy_task, tmp_path):
    from forge.config import load_config
    from forge.errors import ConfigError

    assert load_config(toy_config(tmp_path)).task.name == "toy"
    kd = toy_config(tmp_path, "distillation: {alpha: 0.5}\nteacher: {path: embedded:tiny-distilbert-wide}\n")
    with pytest.raises(ConfigError, match="distillation is available for the mnli, reasoning and ocr tasks, not 'toy'"):
        load_config(kd)
    rl = toy_config(tmp_path, "rl: {rewards: [correctness]}\n")
    with pytest.raises(ConfigError, match=r"RL needs a task a policy can answer \(task.name: reasoning\), not 'toy'"):
        load_config(rl)


def test_an_unknown_task_lists_the_registered_ones(toy_task, tmp_path):
    from forge.config import load_config
    from forge.errors import ConfigError

    with pytest.raises(ConfigError, match="task.name: Input should be 'mnli', 'reasoning', 'ocr' or 'toy'"):
        load_config(write_config(tmp_path, "x.yaml", toy_config(tmp_path).read_text().replace("toy", "nope")))


def test_a_task_from_outside_forge_runs_every_stage(toy_task, tmp_path):
    from forge import status
    from forge.config import load_config
    from forge.pipeline import run_pipeline
    from forge.run.layout import run_dir_of

    cfg = load_config(toy_config(tmp_path))
    assert run_pipeline(cfg, None) == 0
    run = run_dir_of(cfg)
    assert run.complete.exists() and run.root == tmp_path / "outputs" / "toy" / "tiny" / "toy"
    post = json.loads((run.metrics / "post_eval.json").read_text())
    assert post["step"] == 8 and post["validation_matched"]["samples"] == 100
    shown = status.status_of(run.root)
    assert (shown.state, shown.metric, shown.post) == ("complete", "accuracy", post["validation_matched"]["accuracy"])
