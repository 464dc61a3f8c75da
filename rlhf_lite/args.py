"""Recipe arguments: typed dataclasses read from a YAML config, overridable on the command line.

Parsing goes through TRL's `TrlParser` (as TRL's own example scripts do), so a recipe takes
`--config recipes/configs/<preset>/<step>.yaml` plus any `--field value`. Everything that can be
checked without a model -- unknown keys, wrong types, datasets that lack what the step needs, an
output folder holding another run -- fails here, before a model is loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import atomic
from .errors import ConfigError
from .models import LoraSettings, ModelSettings
from .ranges import check_fields

RUN_FILE = "run_config.json"
REWARD_LOSSES = ("last_token", "divergence")
# Fields that may change between a run and its resumption without making it another run.
RESUMABLE = {
    "output_dir",
    "logging_steps",
    "save_steps",
    "eval_steps",
    "report_to",
    "disable_tqdm",
    "save_total_limit",
    "dataloader_num_workers",
    "resume_from_checkpoint",
}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="embedded:smollm2-135m",
        metadata={"help": "hub name, local directory, .gguf file or embedded:smollm2-135m"},
    )
    dtype: str = field(default="fp32", metadata={"help": "fp32, bf16, fp16 or auto"})
    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "module names to adapt; default: the family's attention and MLP projections"}
    )
    lora_learning_rate: float | None = field(
        default=None, metadata={"help": "learning rate of the LoRA weights (default: learning_rate)"}
    )
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    dropout: float | None = field(
        default=None, metadata={"help": "override every dropout probability of the model (0.0 disables dropout)"}
    )
    trainable_layers: int | None = field(
        default=None,
        metadata={"help": "train only the top N transformer blocks, the final norm and the head (default: all)"},
    )
    merge_lora: bool = field(
        default=True, metadata={"help": "save LoRA merged into the base weights (False: the adapter alone)"}
    )

    def settings(self, gradient_checkpointing: bool = False, trust_remote_code: bool = False) -> ModelSettings:
        lora = (
            LoraSettings(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_target_modules)
            if self.use_lora
            else None
        )
        if self.lora_learning_rate is not None and lora is None:
            raise ConfigError("lora_learning_rate is set but use_lora is off")
        return ModelSettings(
            self.model_name_or_path,
            self.dtype,
            self.load_in_8bit,
            self.load_in_4bit,
            lora,
            gradient_checkpointing,
            self.dropout,
            self.trainable_layers,
            trust_remote_code,
        )


@dataclass
class ScriptArguments:
    """What a step reads (datasets) and how it treats its output folder."""

    datasets: list[str] = field(
        default_factory=lambda: ["demo"],
        metadata={"help": "dataset names or paths (in YAML also {name, weight, path, adapter} mappings)"},
    )
    dataset_weights: list[float] | None = field(
        default=None, metadata={"help": "one weight per dataset: 0.5 takes half of it, 2 takes it twice"}
    )
    data_split: str = field(
        default="2,4,4", metadata={"help": "shares of each dataset's train split for steps 1, 2, 3 (DeepSpeed-Chat's)"}
    )
    data_split_seed: int = field(
        default=1234,
        metadata={
            "help": "seed of the permutation data_split cuts (and of eval splits carved from train): "
            "the same in every step, so their shares stay disjoint whatever each step's seed"
        },
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "folder of hub mirrors: <data_dir>/<hub name> is used instead of the hub"}
    )
    eval_split: str = field(default="eval", metadata={"help": "split evaluated during training"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace an output folder that holds a different run"}
    )

    def specs(self) -> list:
        from .data import DatasetSpec

        specs = [DatasetSpec.parse(d) for d in self.datasets]
        if self.dataset_weights is not None:
            if len(self.dataset_weights) != len(specs):
                raise ConfigError(f"dataset_weights has {len(self.dataset_weights)} values for {len(specs)} datasets")
            for spec, w in zip(specs, self.dataset_weights):
                spec.weight = w
        return specs


@dataclass
class SFTArguments(ScriptArguments):
    loss_on_full_text: bool = field(
        default=False,
        metadata={"help": "train on prompt and answer, as DeepSpeed-Chat does (default: the answer only)"},
    )


@dataclass
class RMArguments(ScriptArguments):
    reward_loss: str = field(
        default="last_token",
        metadata={
            "help": "last_token (TRL's) or divergence (DeepSpeed-Chat's: every token after the "
            "first one where chosen and rejected differ)",
            "choices": REWARD_LOSSES,
        },
    )
    data_share: int = field(
        default=1,
        metadata={
            "help": "the share of data_split trained on: 1, step 2's (default); 2, step 3's, for a judge "
            "reward model that never saw step 2's pairs"
        },
    )
    frozen_block_cache_gb: float = field(
        default=4.0,
        metadata={
            "help": "host memory for the output of the frozen blocks below trainable_layers for every "
            "training sequence, recorded in the first epoch so that later epochs run only the "
            "trained blocks; 0 runs every block every epoch"
        },
    )


def parse(dataclass_types: list, step: str, argv: list[str] | None = None):
    """Parse config + overrides into the dataclasses; fill the step's defaults."""
    argv = sys.argv[1:] if argv is None else list(argv)
    config = _config_path(argv)
    if config:
        read_config(config)  # a missing file or bad YAML is said before anything else
    fields = {f.name for d in dataclass_types for f in dataclasses.fields(d)}
    given = lambda key: _argv_sets(argv, key) or _yaml_sets(config, key)  # noqa: E731
    gpu = _has_gpu()
    if not gpu:
        # DeepSpeed (imported while the arguments are checked) would pick the CPU as well, but says
        # so in a warning from every process; naming it is its documented way to choose.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "bf16" in fields and not given("bf16") and not gpu:
        # TRL turns bf16 autocast on by default (and exports it to accelerate's environment while
        # parsing); on a CPU without bf16 units that makes training ~15x slower.
        argv += ["--bf16", "false"]
    if (
        "activation_checkpointing" in fields
        and not given("activation_checkpointing")
        and not given("gradient_checkpointing")
    ):
        # TRL's configs default transformers' deprecated name (gradient_checkpointing: true), which
        # warns in every run; its value under the current name says the same without the warning.
        argv += ["--activation_checkpointing", "true"]
    parser = _recipe_parser()(dataclass_types)
    try:
        parsed = parser.parse_args_and_config(argv)
    except ValueError as e:  # unknown keys in the YAML, or values transformers rejects
        raise ConfigError(" ".join(str(e).split())) from None
    for obj in parsed:
        check_fields(obj)
    training = next(p for p in parsed if hasattr(p, "output_dir"))
    preset = preset_name(argv)
    if not given("output_dir"):  # named after the config: outputs/demo/judge for configs/demo/judge.yaml
        training.output_dir = str(Path("outputs") / preset / (Path(config).stem if config else step))
    if not given("report_to"):
        training.report_to = "tensorboard" if isinstance(training.report_to, str) else ["tensorboard"]
    return parsed


@functools.cache
def _recipe_parser():
    from trl import TrlParser

    class RecipeParser(TrlParser):
        """TRL's parser, its mistakes (a wrong type, a bad choice) one line as all others."""

        def error(self, message):
            self.exit(2, f"error: {message} (see --help)\n")

    return RecipeParser


def preset_name(argv: list[str]) -> str:
    """The preset a command line uses: the folder of its --config file ("custom" without one)."""
    config = _config_path(argv)
    return Path(config).parent.name if config else "custom"


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _config_path(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


def _argv_sets(argv: list[str], key: str) -> bool:
    return any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv)


def _yaml_sets(config: str | None, key: str) -> bool:
    return bool(config) and key in read_config(config)


def read_config(path: str) -> dict:
    """A recipe's YAML config as a mapping; a missing file or bad YAML is one ConfigError line."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file '{path}': {e}") from None
    try:
        content = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"config file '{path}' must hold `key: value` lines, not a {type(content).__name__}")
    return content


def run_record(*parsed) -> dict:
    """Everything that defines a run, as JSON-able values (the output folder's identity card)."""
    record = {}
    for obj in parsed:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            record[f.name] = (
                value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
            )
    return json.loads(json.dumps(record, default=str))


def claim_output_dir(output_dir: str, record: dict, overwrite: bool = False) -> bool:
    """Refuse an output folder that holds a different run; True if this run can resume there."""
    path = Path(output_dir)
    run_file = path / RUN_FILE
    if run_file.exists() and not overwrite:
        old = json.loads(run_file.read_text(encoding="utf-8"))
        changed = sorted(k for k in set(old) | set(record) if k not in RESUMABLE and old.get(k) != record.get(k))
        if changed:
            raise ConfigError(
                f"output dir '{output_dir}' holds a different run (it differs in: "
                f"{', '.join(changed)}). Pick another output_dir, or pass --overwrite_output_dir true."
            )
        return True
    if path.exists() and any(path.iterdir()) and not run_file.exists() and not overwrite:
        raise ConfigError(
            f"output dir '{output_dir}' is not empty and was not written by rlhf-lite; "
            "pick another output_dir, or pass --overwrite_output_dir true."
        )
    if int(os.environ.get("RANK", "0")) == 0:
        if overwrite and path.exists():
            shutil.rmtree(path)  # old metrics, logs and checkpoints must not mix with the new run
        path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(run_file, json.dumps(record, indent=1, ensure_ascii=False))
    return False
