"""The RL path end to end, offline: an SFT warm start, then GRPO whose policy is that
run's final model; a GRPO run killed mid-training resumes to the same weights; LoRA on the policy."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from tests.conftest import (
    GRPO_STEPS,
    REASONING_TINY,
    assert_bitwise_equal,
    run_forge,
    short_grpo_config,
    start_forge,
    wait_for,
    write_config,
)
from tests.integration.test_snakemake import snakemake_cmd

pytestmark = pytest.mark.integration

TINY = REASONING_TINY
STEPS = GRPO_STEPS


def rl_chain(folder, grpo_name: str = "grpo", lora: bool = False):
    """configs/sft.yaml (a short warm start) and configs/<grpo_name>.yaml (short GRPO from it)."""
    configs = folder / "configs"
    write_config(
        configs,
        "sft.yaml",
        f"""
        base: {TINY / "00_sft.yaml"}
        output_root: {folder / "outputs"}
        task:
          max_eval_samples: 40
        training:
          max_steps: 150
          save_steps: 75
          eval_steps: 75
        """,
    )
    return short_grpo_config(configs, grpo_name, folder / "outputs", "sft.yaml", lora)


def run_of(folder, name: str):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "reasoning" / "tiny" / name)


def logged_rewards(text: str) -> dict[int, float]:
    """step -> mean reward, from the `step N/M ... reward=R` lines of a log."""
    return {int(s): float(r) for s, r in re.findall(r"step (\d+)/\d+ .* reward=([-\d.e]+)", text)}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rl")
    result = run_forge("--config", str(rl_chain(folder)), cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr
    return folder, result.stderr


def test_the_offline_sft_to_grpo_chain_completes_through_forge_py(chain):
    folder, err = chain
    sft, grpo = run_of(folder, "sft"), run_of(folder, "grpo")
    assert err.index("student run") < err.index(f"new run in {sft.root}") < err.index(f"new run in {grpo.root}")
    assert sft.complete.exists() and grpo.complete.exists()

    # the policy is the warm-started model: its baseline is the SFT run's final score
    sft_final = json.loads((sft.metrics / "post_eval.json").read_text())["test"]
    grpo_start = json.loads((grpo.metrics / "pre_eval.json").read_text())["test"]
    assert grpo_start["accuracy"] == sft_final["accuracy"] and grpo_start["samples"] == 40
    assert sft_final["format"] > 0.5  # the warm start learned the answer format
    grpo_end = json.loads((grpo.metrics / "post_eval.json").read_text())
    assert grpo_end["step"] == STEPS and 0 <= grpo_end["test"]["accuracy"] <= 1

    log = grpo.log.read_text()
    rewards = logged_rewards(log)
    assert sorted(rewards) == list(range(2, STEPS + 1, 2))  # every logging step, with its rewards
    assert "rewards/correctness/mean=" in log and "rewards/format/mean=" in log
    assert json.loads(grpo.state.read_text())["global_step"] == STEPS

    # the warm start was resolved once, when the GRPO run was created, and recorded
    (link,) = json.loads(grpo.upstream.read_text()).values()
    assert link["role"] == "student" and link["run_dir"] == str(sft.root.resolve())
    assert link["final_model"] == str(sft.model.resolve())
    assert json.loads(sft.metadata.read_text())["config_hash"] == link["config_hash"]


def test_the_final_policy_loads_with_transformers_and_generates(chain):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forge.tasks import reasoning

    model_dir = run_of(chain[0], "grpo").model
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = tokenizer.apply_chat_template(
        reasoning.prompt("Ana has 3 pens and gets 4 more. How many pens does Ana have now?"),
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**batch, max_new_tokens=16, do_sample=False)
    text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()  # it answers something, in text


def test_a_grpo_run_killed_mid_training_resumes_at_its_checkpoint_to_the_same_weights(chain):
    folder = chain[0]
    run = run_of(folder, "grpo_kill")
    env = {"WANDB_MODE": "offline"}
    proc = start_forge("--config", str(rl_chain(folder, "grpo_kill")), cwd=folder, env=env)
    wait_for(run.latest_checkpoint.exists, proc=proc, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not run.stage_marker("train").exists(), "killed too late to test anything"
    before = run.log.read_text()

    # the run resumes from its own directory: the configs it (and its warm start) came from are not read
    (folder / "configs").rename(folder / "configs.away")
    try:
        result = run_forge("--resume", str(run.root), cwd=folder, env=env, timeout=600)
    finally:
        (folder / "configs.away").rename(folder / "configs")
    assert result.returncode == 0, result.stderr
    resumed_from = int(re.search(r"resuming training from checkpoint-(\d+)", result.stderr).group(1))
    assert 0 < resumed_from < STEPS
    assert json.loads(run.state.read_text())["global_step"] == STEPS
    after = logged_rewards(run.log.read_text()[len(before) :])
    assert after and min(after) > resumed_from and max(after) == STEPS  # not from step 0

    # both attempts continued one W&B run, up to the last step
    run_id = json.loads(run.metadata.read_text())["wandb_run_id"]
    attempts = sorted(p.name for p in (run.root / "wandb").glob("offline-run-*"))
    assert len(attempts) == 2 and all(name.endswith(run_id) for name in attempts)
    assert int((run.root / "wandb" / "forge_last_step").read_text()) == STEPS
    # and to the very weights of the uninterrupted run (the checkpoint restores the RNG
    # that samples the completions)
    assert_bitwise_equal(run, run_of(folder, "grpo"))


def test_lora_on_the_policy_saves_an_adapter_and_a_merged_policy_that_agree(chain):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = chain[0]
    result = run_forge("--config", str(rl_chain(folder, "grpo_lora", lora=True)), cwd=folder, timeout=600)
    assert result.returncode == 0, result.stderr
    run = run_of(folder, "grpo_lora")
    base_dir = json.loads((run.adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base_dir == str(run_of(folder, "sft").model)  # the adapter names the warm-started policy

    tokenizer = AutoTokenizer.from_pretrained(run.model)
    batch = tokenizer(["Ben has 5 coins and gives away 2."], return_tensors="pt")
    merged = AutoModelForCausalLM.from_pretrained(run.model).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run.adapter).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, adapted(**batch).logits, rtol=0, atol=1e-5)


@pytest.mark.heavy  # the whole chain again, through Snakemake
def test_the_chain_runs_through_snakemake_warm_start_first(tmp_path):
    rl_chain(tmp_path)
    sft, grpo = run_of(tmp_path, "sft"), run_of(tmp_path, "grpo")
    plan = subprocess.run(snakemake_cmd(tmp_path, "-n"), capture_output=True, text=True, timeout=300)
    out = plan.stdout + plan.stderr
    assert out.index(f"train {sft.root}: starts fresh") < out.index(f"train {grpo.root}: starts fresh")
    result = subprocess.run(snakemake_cmd(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert sft.complete.exists() and grpo.complete.exists()
    assert sorted(logged_rewards(grpo.log.read_text())) == list(range(2, STEPS + 1, 2))
    assert json.loads((grpo.metrics / "post_eval.json").read_text())["step"] == STEPS


@pytest.mark.heavy
def test_a_grpo_run_stopped_between_two_logs_resumes_to_the_same_curve(chain):
    """SIGUSR1 between two logs (every 6 steps; checkpoints every 4): the first record
    logged after the resume averages trl's reward / length / KL buffers over the same steps
    as the uninterrupted run's, so steps.jsonl holds the same curve."""
    from forge.run import steplog

    folder = chain[0]
    configs = folder / "configs"
    for name in ("grpo_whole", "grpo_stopped"):
        base = short_grpo_config(configs, f"{name}_base", folder / "outputs", "sft.yaml")
        write_config(configs, f"{name}.yaml", f"base: {base}\nrun_name: {name}\ntraining: {{logging_steps: 6}}\n")
    env = {"WANDB_MODE": "offline"}
    assert run_forge("--config", str(configs / "grpo_whole.yaml"), cwd=folder, env=env, timeout=600).returncode == 0
    run = run_of(folder, "grpo_stopped")
    proc = start_forge("--config", str(configs / "grpo_stopped.yaml"), cwd=folder, env=env)
    wait_for(run.latest_checkpoint.exists, proc=proc, timeout=300)
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=300) == 76
    stopped_at = json.loads(run.state.read_text())["global_step"]
    assert stopped_at % 6, f"stopped on a log step ({stopped_at}): nothing between two logs to carry"
    result = run_forge("--resume", str(run.root), cwd=folder, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    def curve(r):
        timing = ("time", "per_second")
        return [
            {k: v for k, v in x.items() if not any(t in k for t in timing)} for x in steplog.read(r) if "reward" in x
        ]

    whole = curve(run_of(folder, "grpo_whole"))
    assert [x["step"] for x in whole] == [6, 12] and "rewards/correctness/mean" in whole[0]
    assert curve(run) == whole
    assert_bitwise_equal(run, run_of(folder, "grpo_whole"))
