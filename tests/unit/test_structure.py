"""forge's shape: no import cycle, no module importing one on a higher floor, no task type
named outside forge/tasks/ (and forge/config/), and a new task is a config, not code."""

from __future__ import annotations

import ast
import json
from pathlib import Path

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
        "forge.rng",
        "forge.rewards",
        "forge.ocr_metrics",
        "forge.launch",
        "forge.refs",
        "forge.warm",
    },  # fmt: skip
    {"forge.embedded", "forge.hub"},  # artifacts forge builds, and the Hub
    {"forge.models", "forge.harness"},  # loading models, and lm-evaluation-harness over them
    {"forge.tasks"},  # the task types: what each reads, loads, grades and supports
    {"forge.config"},  # configs, validated against the tasks
    # the run directory's state machine, its W&B run, a new run's needs and the one admission
    {"forge.run", "forge.tracking", "forge.preflight", "forge.admission"},
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


def test_a_run_is_admitted_in_one_place():
    """forge/admission.py alone runs preflight and resolves the runs a run builds on; the
    others (forge.py, sweeps, `forge stage`, the session, `forge check`) take what it returns."""
    edges = graph()
    callers = {
        "forge.preflight": {"forge.admission"},
        "forge.admission": {"forge.pipeline", "forge.run.session", "forge.cli"},
    }
    for module, allowed in callers.items():
        assert {m for m, targets in edges.items() if module in targets} == allowed, module
    loads = [m for m, path in modules().items() if "upstream.load(" in path.read_text() and m != "forge.run.upstream"]
    assert sorted(loads) == ["forge.admission", "forge.workflow"], loads


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


def test_no_task_type_or_old_task_is_named_outside_forge_tasks_and_config():
    """What a type is and does is said in forge/tasks/; the old task names live on as configs
    (configs/) and as the shorthands forge/config/legacy.py reads. Nothing else names them."""
    from forge.config.legacy import PRESETS
    from forge.tasks import TYPES

    names = set(TYPES) | set(PRESETS)
    found = []
    for module, path in modules().items():
        # forge.embedded's generated copies of Hub datasets keep the Hub's config names (GLUE's "mnli")
        if module.startswith(("forge.tasks", "forge.config", "forge.embedded")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "\n".join(found)


def test_a_new_task_is_a_config_and_runs_every_stage(tmp_path):
    """A task forge has never seen (a sentiment CSV, string labels, no validation file) needs
    a config and nothing else: it validates, runs every stage, and `forge status` reads its
    main metric from the run."""
    from forge import status
    from forge.config import load_config
    from forge.pipeline import run_pipeline
    from forge.run.layout import run_dir_of

    data = tmp_path / "data"
    data.mkdir()
    rows = [("a great film", "positive"), ("a dull film", "negative"), ("great fun", "positive"),
            ("dull and slow", "negative")] * 25  # fmt: skip
    (data / "train.csv").write_text("sentence,sentiment\n" + "".join(f"{t},{s}\n" for t, s in rows))
    config = write_config(
        tmp_path,
        "sentiment.yaml",
        f"""
        output_root: {tmp_path / "outputs"}
        task:
          name: sentiment
          type: classification
          dataset: {data}
          data_files: {{train: train.csv}}
          columns: {{text: sentence, label: sentiment}}
          eval_split: 0.2
          max_length: 16
        student:
          name: tiny
          path: embedded:tiny-distilbert
        training:
          max_steps: 4
          batch_size: 8
          save_steps: 4
          logging_steps: 2
        """,
    )
    cfg = load_config(config)
    assert run_pipeline(cfg, None) == 0
    run = run_dir_of(cfg)
    assert run.complete.exists() and run.root == tmp_path / "outputs" / "sentiment" / "tiny" / "sentiment"
    post = json.loads((run.metrics / "post_eval.json").read_text())
    assert post["step"] == 4 and post["eval"]["samples"] == 20 and post["main"]["metric"] == "accuracy"
    shown = status.status_of(run.root)
    assert (shown.state, shown.metric, shown.post) == ("complete", "accuracy", post["eval"]["accuracy"])
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(run.model).id2label == {0: "negative", 1: "positive"}


def test_the_readme_code_layout_names_every_module():
    """README's code layout matches the tree: each module of forge/ is named there (a top-level
    one by its path, one in a package by its name)."""
    layout = (ROOT / "README.md").read_text().split("## Code layout", 1)[1].split("```")[1]
    missing = []
    for path in sorted((ROOT / "forge").rglob("*.py")):
        relative = path.relative_to(ROOT)
        if path.name == "__init__.py":
            continue
        named = str(relative) if path.parent.name == "forge" else path.stem.removesuffix(".py")
        if named not in layout:
            missing.append(str(relative))
    assert not missing, f"README's code layout does not name: {', '.join(missing)}"


TRAINERS = {"Trainer", "Seq2SeqTrainer", "SFTTrainer", "GRPOTrainer", "FinetuningTrainer", "DistillationTrainer",
            "PolicyTrainer"}  # fmt: skip


def test_nothing_below_the_trainers_builds_a_trainer():
    """A trainer is built per mode by the train stage (forge/stages/train.py), above
    forge/trainers/; nothing on a lower floor constructs one."""
    trainers_floor = floor_of("forge.trainers")
    builders = set()
    for name, path in modules().items():
        if floor_of(name) >= trainers_floor:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = getattr(node.func, "id", getattr(node.func, "attr", None))
                if called in TRAINERS:
                    builders.add(name)
    assert not builders, builders
