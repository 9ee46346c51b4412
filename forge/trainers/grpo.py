"""RL: `PolicyTrainer`, trl's `GRPOTrainer` with forge's rewards; the config half of the pair is `rl:`.

trl samples `rl.num_generations` completions per prompt, scores each with the reward
functions of `rl.rewards` (forge/rewards.py, weighted), and moves the policy towards
the completions that beat their group's mean. forge adds no loss: it builds the
`GRPOConfig` from the same training keys as SFT and KD, and being a Trainer, the
policy trainer checkpoints, resumes and stops on a signal through forge's callbacks
like the other two. `training.batch_size` counts completions (prompts × generations).
"""

from __future__ import annotations

from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer

from forge.config.schema import ForgeConfig
from forge.rewards import reward_functions
from forge.run.layout import RunDir
from forge.trainers.arguments import argument_values
from forge.trainers.resume import ExactResume
from forge.trainers.window import LogWindow


def grpo_arguments(cfg: ForgeConfig, run: RunDir) -> GRPOConfig:
    rl = cfg.rl
    _, weights = reward_functions(rl.rewards)
    values = argument_values(cfg, run)
    # Answers are graded by pre_eval and post_eval (greedy accuracy); training logs the
    # rewards of every batch it samples.
    values.update(eval_strategy="no", eval_steps=None)
    return GRPOConfig(
        **values,
        num_generations=rl.num_generations,
        max_completion_length=rl.max_completion_length,
        temperature=rl.temperature,
        beta=rl.beta,
        loss_type=rl.loss_type,
        reward_weights=weights,
    )


class PolicyTrainer(LogWindow, ExactResume, GRPOTrainer):
    """GRPO on a policy model with the checked reward functions of `rl.rewards`."""

    def __init__(self, *args, cfg: ForgeConfig, run: RunDir, answer_patterns=None, **kwargs):
        """`answer_patterns`: how the built-in rewards read an answer (the task's answer_pattern)."""
        functions, _ = reward_functions(cfg.rl.rewards, **({"patterns": answer_patterns} if answer_patterns else {}))
        super().__init__(*args, reward_funcs=functions, args=grpo_arguments(cfg, run), **kwargs)
        # forge's StepMetricsCallback logs every step to the console and output.log.
        self.remove_callback(PrinterCallback)

    def loss_window(self) -> dict:
        """The window also keeps trl's per-log buffers (rewards, completion lengths, KL, ...):
        trl averages each over the steps since the last log."""
        buffers = {key: list(values) for key, values in self._metrics["train"].items()}
        return {**super().loss_window(), "metrics": buffers}

    def restore_loss_window(self, window: dict) -> None:
        super().restore_loss_window(window)
        for key, values in (window.get("metrics") or {}).items():
            self._metrics["train"][key] = list(values) + self._metrics["train"][key]
