"""Step 3's settings: one flat dataclass, named after DeepSpeed-Chat's step-3 flags where it has one."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..args import ScriptArguments, step_output
from ..errors import ConfigError
from ..models import LoraSettings, ModelSettings
from ..ranges import check_fields

QUANTIZATIONS = ("none", "8bit", "4bit")
# What the loop may skip or reuse without changing its numbers beyond rounding (each tested so):
# row_groups: forwards run rows of similar length together, without their shared padding (padding.py);
# frozen_blocks: frozen bottom blocks run once per experience, their output replayed (trunk.py);
# rollout_graphs: the scoring forward, kept with its graph, is the first update's forward;
# merged_lora: generation runs on a copy of the weights with the LoRA update merged in.
SPEEDUPS = ("row_groups", "frozen_blocks", "rollout_graphs", "merged_lora")


@dataclass
class PPOArguments(ScriptArguments):
    # ---- models (default: what steps 1 and 2 of the same preset wrote)
    actor_model_name_or_path: str | None = field(default=None, metadata={"help": "default outputs/<preset>/sft"})
    critic_model_name_or_path: str | None = field(default=None, metadata={"help": "default outputs/<preset>/rm"})
    reward_model_name_or_path: str | None = field(default=None, metadata={"help": "default: the critic's path"})
    output_dir: str | None = field(default=None, metadata={"help": "default outputs/<preset>/ppo"})
    dtype: str = field(default="fp32", metadata={"help": "fp32, bf16, fp16 or auto"})
    actor_quantization: str = field(default="none", metadata={"choices": QUANTIZATIONS, "help": "needs actor LoRA"})
    critic_quantization: str = field(default="none", metadata={"choices": QUANTIZATIONS, "help": "needs critic LoRA"})
    reward_quantization: str = field(default="none", metadata={"choices": QUANTIZATIONS})
    actor_lora_dim: int = field(default=0, metadata={"help": "LoRA rank (0: train all weights)"})
    critic_lora_dim: int = field(default=0, metadata={"help": "LoRA rank (0: train all weights)"})
    lora_alpha_ratio: float = field(default=2.0, metadata={"help": "LoRA alpha = ratio * rank"})
    lora_dropout: float = 0.0
    lora_module_name: list[str] | None = field(default=None, metadata={"help": "default: attention and MLP"})
    actor_trainable_layers: int | None = field(default=None, metadata={"help": "train only the top N blocks"})
    critic_trainable_layers: int | None = field(default=None, metadata={"help": "train only the top N blocks"})
    actor_gradient_checkpointing: bool = False
    critic_gradient_checkpointing: bool = False
    disable_actor_dropout: bool = True
    disable_critic_dropout: bool = True
    trust_remote_code: bool = False
    merge_lora: bool = field(default=True, metadata={"help": "save actor/critic with LoRA merged"})
    # ---- data and batches
    per_device_generation_batch_size: int = field(default=4, metadata={"help": "prompts per generation"})
    per_device_training_batch_size: int = field(default=4, metadata={"help": "experiences per PPO update"})
    generation_batches: int = field(default=1, metadata={"help": "generation batches per PPO training round"})
    ppo_epochs: int = field(default=1, metadata={"help": "passes over each experience buffer"})
    num_train_epochs: int = 1
    max_steps: int = field(default=-1, metadata={"help": "stop after this many generation batches"})
    max_prompt_seq_len: int = field(default=256, metadata={"help": "longer prompts are dropped and counted"})
    max_answer_seq_len: int = 256
    min_new_tokens: int = 1
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 1234
    # ---- optimisation
    actor_learning_rate: float = 9.65e-6
    critic_learning_rate: float = 5e-6
    actor_lora_learning_rate: float | None = field(default=None, metadata={"help": "default: actor_learning_rate"})
    critic_lora_learning_rate: float | None = None
    actor_weight_decay: float = 0.0
    critic_weight_decay: float = 0.0
    lr_scheduler_type: str = "cosine"
    num_warmup_steps: float = field(default=0, metadata={"help": "optimizer steps, or a ratio if < 1"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "0 disables clipping"})
    # ---- PPO
    init_kl_coef: float = 0.1
    target_kl: float | None = field(default=None, metadata={"help": "adaptive KL coefficient (None: fixed)"})
    kl_horizon: int = 10000
    clip_reward_value: float = 5.0
    no_eos_penalty: float = field(default=0.0, metadata={"help": "subtracted from scores of answers without EOS"})
    empty_answer_score: float | None = field(default=None, metadata={"help": "score of only-EOS answers (None: drop)"})
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = False
    enable_ema: bool = False
    ema_beta: float = 0.992
    disable_speedups: list[str] | None = field(default=None, metadata={"help": ", ".join(SPEEDUPS)})
    ptx_datasets: list[str] | None = field(default=None, metadata={"help": "datasets for the pretraining mix"})
    ptx_coef: float = 27.8
    # ---- bookkeeping
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 1
    print_answers_interval: int = field(default=0, metadata={"help": "print sample answers every N steps"})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard or none"})

    def __post_init__(self) -> None:
        check_fields(self)
        buffered = self.per_device_generation_batch_size * self.generation_batches
        if buffered % self.per_device_training_batch_size:
            raise ConfigError(
                f"per_device_generation_batch_size x generation_batches = {buffered} experiences is "
                f"not a multiple of per_device_training_batch_size = {self.per_device_training_batch_size}"
            )
        if self.min_new_tokens > self.max_answer_seq_len:
            raise ConfigError(
                f"min_new_tokens ({self.min_new_tokens}) must not exceed max_answer_seq_len "
                f"({self.max_answer_seq_len})"
            )
        for role in ("actor", "critic"):
            if getattr(self, f"{role}_quantization") != "none" and not getattr(self, f"{role}_lora_dim"):
                raise ConfigError(
                    f"{role}_quantization needs {role}_lora_dim > 0: quantised weights cannot be trained directly"
                )
            if getattr(self, f"{role}_lora_learning_rate") is not None and not getattr(self, f"{role}_lora_dim"):
                raise ConfigError(f"{role}_lora_learning_rate is set but {role}_lora_dim is 0")
        unknown = set(self.disable_speedups or ()) - set(SPEEDUPS)
        if unknown:
            raise ConfigError(f"disable_speedups: unknown {sorted(unknown)}; known: {', '.join(SPEEDUPS)}")
        if self.report_to not in ("tensorboard", "none"):
            raise ConfigError(f"report_to must be tensorboard or none, got '{self.report_to}'")

    def fill_model_paths(self, preset: str) -> None:
        """Default actor / critic: what steps 1 and 2 of `preset` wrote; a missing one stops the run."""
        for role, step in (("actor", "sft"), ("critic", "rm")):
            attr = f"{role}_model_name_or_path"
            if getattr(self, attr) is None:
                setattr(self, attr, step_output(preset, step, "step 3", attr))
        self.reward_model_name_or_path = self.reward_path  # as the run's record names it

    @property
    def reward_path(self) -> str | None:
        """The reward model, by default the critic's checkpoint (step 2's model, as in DeepSpeed-Chat)."""
        return self.reward_model_name_or_path or self.critic_model_name_or_path

    def speedup(self, name: str) -> bool:
        return name not in (self.disable_speedups or ())

    def reuses_rollout_forward(self, role: str, zero_stage: int = 0) -> bool:
        """Whether `role`'s scoring forward, graph kept, can be the first update's: same weights, same
        rows (one experience, one mini-batch), no dropout and no ZeRO-3 (it re-partitions the weights)."""
        return (
            self.speedup("rollout_graphs")
            and zero_stage != 3
            and self.generation_batches == 1
            and self.per_device_generation_batch_size <= self.per_device_training_batch_size
            and getattr(self, f"disable_{role}_dropout")
            and not (getattr(self, f"{role}_lora_dim") and self.lora_dropout)
        )

    def model_settings(self, role: str) -> ModelSettings:
        """ModelSettings of 'actor', 'critic' or 'reward'."""
        rank, quant = getattr(self, f"{role}_lora_dim", 0), getattr(self, f"{role}_quantization")
        alpha = int(self.lora_alpha_ratio * rank)
        lora = LoraSettings(rank, alpha, self.lora_dropout, self.lora_module_name) if rank else None
        trained = role != "reward"
        return ModelSettings(
            self.reward_path if role == "reward" else getattr(self, f"{role}_model_name_or_path"),
            self.dtype,
            quant == "8bit",
            quant == "4bit",
            lora,
            gradient_checkpointing=trained and getattr(self, f"{role}_gradient_checkpointing"),
            dropout=0.0 if trained and getattr(self, f"disable_{role}_dropout") else None,
            trainable_layers=getattr(self, f"{role}_trainable_layers") if trained else None,
            trust_remote_code=self.trust_remote_code,
        )
