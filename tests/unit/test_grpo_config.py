"""`rl:` → trl's GRPOConfig: the RL keys, the rewards' weights, and the shared training keys."""

from forge.config import load_config
from forge.run.layout import RunDir
from tests.conftest import ROOT

GRPO = ROOT / "configs" / "reasoning" / "gsm8k" / "tiny" / "01_grpo.yaml"


def test_grpo_arguments_come_from_the_rl_and_training_blocks(tmp_path):
    from forge.trainers.grpo import grpo_arguments

    cfg = load_config(GRPO, {"rl.beta": 0.04, "rl.loss_type": "grpo", "rl.temperature": 0.7})
    args = grpo_arguments(cfg, RunDir(tmp_path / "run"))
    assert args.num_generations == cfg.rl.num_generations == 8
    assert args.max_completion_length == 32 and args.temperature == 0.7
    assert args.beta == 0.04 and args.loss_type == "grpo"
    assert args.reward_weights == [1.0, 0.2]  # correctness, format: config order
    assert args.per_device_train_batch_size == cfg.training.batch_size == 256  # completions per step
    assert args.learning_rate == cfg.training.learning_rate and args.max_steps == cfg.training.max_steps
    assert args.save_steps == cfg.training.save_steps and args.output_dir == str(tmp_path / "run")
    assert args.eval_strategy == "no"
    assert not args.bf16 and not args.fp16  # fp32 unless training.precision says otherwise
    assert not args.activation_checkpointing  # trl's default is on; forge's follows training.*
