"""The RL path end to end, offline: an SFT warm start, then GRPO whose policy is that
run's final model; a GRPO run killed mid-training resumes to the same weights; LoRA on the policy."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.conftest import (
    GRPO_STEPS,
    REASONING_TINY,
    assert_bitwise_equal,
    forge_here,
    run_forge,
    short_grpo_config,
    start_forge,
    wait_for,
)

pytestmark = pytest.mark.integration

TINY = REASONING_TINY
STEPS = GRPO_STEPS


def grpo_config(folder, warm_start, name: str = "grpo", lora: bool = False):
    """configs/<name>.yaml: a short GRPO run (tests.conftest.short_grpo_config) from the
    session's complete warm start."""
    return short_grpo_config(folder / "configs", name, folder / "outputs", warm_start, lora)


def run_of(folder, name: str):
    from forge.run.layout import RunDir

    return RunDir(folder / "outputs" / "reasoning" / "tiny" / name)


def logged_rewards(text: str) -> dict[int, float]:
    """step -> mean reward, from the `step N/M ... reward=R` lines of a log."""
    return {int(s): float(r) for s, r in re.findall(r"step (\d+)/\d+ .* reward=([-\d.e]+)", text)}


@pytest.fixture(scope="module")
def chain(tmp_path_factory, warm_start):
    """(the folder of an uninterrupted GRPO run from the warm start, the warm start's run)"""
    folder = tmp_path_factory.mktemp("rl")
    result = forge_here("--config", str(grpo_config(folder, warm_start)), cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, run_of(warm_start.parents[1], "sft")


def test_grpo_from_the_offline_sft_warm_start_completes_through_forge_py(chain):
    """(That forge.py trains an upstream run first is tested once, by the KD pair in
    test_distillation; Snakemake's, by the one DAG of every chain in test_snakemake.)"""
    folder, sft = chain
    grpo = run_of(folder, "grpo")
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

    model_dir = run_of(chain[0], "grpo").model
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    batch = tokenizer.apply_chat_template(
        [
            {
                "role": "user",
                "content": "Solve the problem. End with a line '#### <answer>'.\nAna has 3 pens and gets 4 more.",
            }
        ],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**batch, max_new_tokens=16, do_sample=False)
    text = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()  # it answers something, in text


def test_a_grpo_run_killed_mid_training_resumes_at_its_checkpoint_to_the_same_weights(chain, warm_start, tmp_path):
    folder = chain[0]
    run = run_of(folder, "grpo_kill")
    env = {"WANDB_MODE": "offline"}
    proc = start_forge("--config", str(grpo_config(folder, warm_start, "grpo_kill")), cwd=folder, env=env)
    wait_for(run.latest_checkpoint.exists, proc=proc, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not run.stage_marker("train").exists(), "killed too late to test anything"
    before = run.log.read_text()

    # the run resumes from its own directory: the configs it (and its warm start) came from are not read
    away = [(folder / "configs", tmp_path / "configs"), (warm_start.parent, tmp_path / "warm_start_configs")]
    for here, there in away:
        here.rename(there)
    try:
        result = run_forge("--resume", str(run.root), cwd=folder, env=env, timeout=600)
    finally:
        for here, there in away:
            there.rename(here)
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


def test_lora_on_the_policy_saves_an_adapter_and_a_merged_policy_that_agree(chain, warm_start):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, sft = chain
    config = grpo_config(folder, warm_start, "grpo_lora", lora=True)
    result = forge_here("--config", str(config), cwd=folder)
    assert result.returncode == 0, result.stderr
    run = run_of(folder, "grpo_lora")
    base_dir = json.loads((run.adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base_dir == str(sft.model.resolve())  # the adapter names the warm-started policy

    tokenizer = AutoTokenizer.from_pretrained(run.model)
    batch = tokenizer(["Ben has 5 coins and gives away 2."], return_tensors="pt")
    merged = AutoModelForCausalLM.from_pretrained(run.model).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), run.adapter).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, adapted(**batch).logits, rtol=0, atol=1e-5)
