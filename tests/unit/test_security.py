"""What forge never does: run code from a config, a checkpoint or a model repository, or
build a shell command from config values. Static checks over forge's source, and a model
directory that ships its own code."""

from __future__ import annotations

import ast
import json
import re
import shutil

import pytest

from tests.conftest import ROOT

SOURCES = sorted((ROOT / "forge").rglob("*.py"))


def calls(name: str):
    """(file, call node) of every call of `name` (a dotted attribute like yaml.load) in forge/."""
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(name):
                yield path.relative_to(ROOT), node


def keyword(node: ast.Call, name: str):
    return next((ast.unparse(k.value) for k in node.keywords if k.arg == name), None)


def test_yaml_is_only_read_with_a_safe_loader():
    loads = list(calls("yaml.load"))
    assert loads  # the check looks at real calls
    for where, node in loads:
        assert "SafeLoader" in (keyword(node, "Loader") or "") or "_SafeLoader" in ast.unparse(node), where
    assert not list(calls("yaml.unsafe_load")) and not list(calls("yaml.full_load"))
    import yaml

    from forge.config import loader

    assert issubclass(loader._StrictSafeLoader, (yaml.SafeLoader, yaml.CSafeLoader))  # the name does not lie


def test_tensors_and_arrays_are_loaded_without_pickle():
    for where, node in calls("torch.load"):
        assert keyword(node, "weights_only") == "True", where
    for where, node in calls("np.load"):
        assert keyword(node, "allow_pickle") in (None, "False"), where


def test_no_shell_and_no_remote_code_anywhere_in_forge():
    for path in SOURCES:
        text = path.read_text()
        assert "shell=True" not in text and "os.system(" not in text and "os.popen(" not in text, path
        assert not re.search(r"trust_remote_code\s*=\s*True", text), path


def test_snakemake_quotes_every_value_it_puts_in_a_shell_command():
    commands = [
        (path.name, command)
        for path in [ROOT / "Snakefile", *sorted((ROOT / "rules").glob("*.smk"))]
        for command in re.findall(r'shell:\s*\n\s*"([^"]*)"', path.read_text())
    ]
    assert len(commands) == 6  # one per stage rule, and the sweep report's
    # FORGE and the train launcher are commands forge builds itself: the quoted
    # interpreter path and integers (test_distributed.py checks the launcher's refusals);
    # a sweep report's run directories are each quoted with shlex.quote (rules/common.smk)
    built = {"FORGE", "params.forge", "params.runs"}
    for name, command in commands:
        for field in re.findall(r"\{([^}]+)\}", command):
            assert field in built or field.endswith(":q"), f"{name}: {{{field}}} in {command!r}"


OWN_CODE = """
from transformers import DistilBertConfig, DistilBertForSequenceClassification

open({marker!r}, "w").close()


class Config(DistilBertConfig):
    pass


class Model(DistilBertForSequenceClassification):
    config_class = Config
"""


def model_with_own_code(tmp_path):
    """The tiny model, with a config that maps it to the repository's own code (which
    leaves a marker file when it runs)."""
    from forge import embedded

    model = tmp_path / "model"
    shutil.copytree(embedded.ensure("embedded:tiny-distilbert"), model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "own_code.Config",
        "AutoModelForSequenceClassification": "own_code.Model",
    }
    (model / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (model / "own_code.py").write_text(OWN_CODE.format(marker=str(marker)))
    return model, marker


def test_a_model_directory_that_ships_code_loads_without_running_it(tmp_path):
    from forge.models.loading import ModelSource, classifier, load_model

    model, marker = model_with_own_code(tmp_path)
    for ref in (str(model), ModelSource(str(model))):  # a path, and a source left at its default
        loaded = load_model(ref, classifier(["a", "b", "c"]))
        assert type(loaded).__name__ == "DistilBertForSequenceClassification"  # transformers' own class
    assert not marker.exists()


def test_the_repository_code_runs_only_when_the_config_says_so(tmp_path):
    from forge.models.loading import ModelSource, classifier, load_model

    model, marker = model_with_own_code(tmp_path)
    loaded = load_model(ModelSource(str(model), trust_remote_code=True), classifier(["a", "b", "c"]))
    assert type(loaded).__name__ == "Model" and marker.exists()  # the repository's class


@pytest.mark.parametrize("name", ["a/b", "..", ".hidden", "x; rm -rf ~", "$(reboot)", "a b", "~root"])
def test_run_and_model_names_cannot_leave_the_output_tree(name, tmp_path):
    from forge.config import load_config
    from forge.errors import ConfigError
    from tests.conftest import TINY_CONFIG, write_config

    for key in ("run_name", "student.name"):
        with pytest.raises(ConfigError, match=re.escape(key) + ": String should match pattern"):
            load_config(write_config(tmp_path, "run.yaml", f"base: {TINY_CONFIG}\n"), {key: name})


def test_every_subprocess_gets_an_argument_list_not_a_command_string():
    runs = list(calls("subprocess.run"))
    assert runs  # scontrol requeue / show job, git rev-parse
    for where, node in runs:
        assert isinstance(node.args[0], ast.List), where
