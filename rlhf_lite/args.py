"""Recipe arguments: dataclasses read by TRL's `TrlParser` from `--config <yaml>` plus any
`--field value`. Everything checkable without a model fails here, before one is loaded."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from accelerate import PartialState

from . import atomic
from .data import DatasetSpec
from .errors import ConfigError
from .models import LoraSettings, ModelSettings
from .ranges import check_fields

RUN_FILE = "run_config.json"
REWARD_LOSSES = ("last_token", "divergence")
# Fields that may change between a run and its resumption without making it another run.
RESUMABLE = {"output_dir", "resume_from_checkpoint", "report_to", "disable_tqdm", "dataloader_num_workers"}
RESUMABLE |= {"logging_steps", "save_steps", "eval_steps", "save_total_limit"}


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default="embedded:smollm2-135m", metadata={"help": "hub name, folder or .gguf"})
    dtype: str = field(default="fp32", metadata={"help": "fp32, bf16, fp16 or auto"})
    use_lora: bool = field(default=False, metadata={"help": "train LoRA adapters instead of all weights"})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = field(default=None, metadata={"help": "default: attention and MLP"})
    lora_learning_rate: float | None = field(default=None, metadata={"help": "default: learning_rate"})
    load_in_8bit: bool = False
    load_in_4bit: bool = False
    dropout: float | None = field(default=None, metadata={"help": "override every dropout probability"})
    trainable_layers: int | None = field(default=None, metadata={"help": "train only the top N blocks and the head"})
    merge_lora: bool = field(default=True, metadata={"help": "save LoRA merged (False: the adapter alone)"})

    def settings(self, gradient_checkpointing: bool = False, trust_remote_code: bool = False) -> ModelSettings:
        lora = None
        if self.use_lora:
            lora = LoraSettings(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_target_modules)
        elif self.lora_learning_rate is not None:
            raise ConfigError("lora_learning_rate is set but use_lora is off")
        kw = {k: getattr(self, k) for k in ("dtype", "load_in_8bit", "load_in_4bit", "dropout", "trainable_layers")}
        kw.update(lora=lora, gradient_checkpointing=gradient_checkpointing, trust_remote_code=trust_remote_code)
        return ModelSettings(self.model_name_or_path, **kw)


@dataclass
class ScriptArguments:
    datasets: list[str] = field(default_factory=lambda: ["demo"], metadata={"help": "names, paths or mappings"})
    dataset_weights: list[float] | None = field(default=None, metadata={"help": "0.5 takes half, 2 twice"})
    data_split: str = field(default="2,4,4", metadata={"help": "train shares of steps 1, 2, 3"})
    # The same in every step, so that the steps' shares stay disjoint whatever each step's seed.
    data_split_seed: int = field(default=1234, metadata={"help": "seed of the permutation data_split cuts"})
    data_dir: str | None = field(default=None, metadata={"help": "folder of hub mirrors (<data_dir>/<hub name>)"})
    eval_split: str = field(default="eval", metadata={"help": "split evaluated during training"})
    chat_template: bool = field(
        default=False,
        metadata={"help": "render conversational data with the model's chat template, not as Human/Assistant"},
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "replace a folder holding another run"})

    def specs(self) -> list:
        specs = [DatasetSpec.parse(d) for d in self.datasets]
        weights = self.dataset_weights
        if weights is not None and len(weights) != len(specs):
            raise ConfigError(f"dataset_weights has {len(weights)} values for {len(specs)} datasets")
        for spec, w in zip(specs, weights or []):
            spec.weight = w
        return specs


@dataclass
class SFTArguments(ScriptArguments):
    loss_on_full_text: bool = field(default=False, metadata={"help": "train on the prompt too (DeepSpeed-Chat)"})


@dataclass
class PairArguments(ScriptArguments):
    # 2: step 3's share, for a judge reward model that never saw step 2's pairs
    data_share: int = field(default=1, metadata={"help": "the data_split share trained on"})


@dataclass
class RMArguments(PairArguments):
    reward_loss: str = field(
        default="last_token",
        metadata={
            "choices": REWARD_LOSSES,
            "help": "last_token (TRL's) or divergence (DeepSpeed-Chat's: every token after the first where "
            "chosen and rejected differ)",
        },
    )
    # The frozen blocks' outputs, recorded in the first epoch so that later ones run only the trained blocks.
    frozen_block_cache_gb: float = field(default=4.0, metadata={"help": "0 runs every block every epoch"})


def parse(dataclass_types: list, step: str, argv: list[str] | None = None):
    """Parse config + overrides into the dataclasses; fill the step's defaults."""
    argv = sys.argv[1:] if argv is None else list(argv)
    config = _argv_value(argv, "config")
    yaml_keys = read_config(config) if config else {}  # a missing file or bad YAML is said first
    fields = {f.name for d in dataclass_types for f in dataclasses.fields(d)}
    given = lambda key: key in yaml_keys or _argv_value(argv, key) is not None
    if not torch.cuda.is_available():
        # DeepSpeed (imported while the arguments are checked) would pick it too, but warn in every process.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if "bf16" in fields and not given("bf16"):
            # TRL's default bf16 autocast makes training ~15x slower on a CPU without bf16 units; an
            # argv override, since TRL exports bf16 to accelerate's environment while parsing.
            argv += ["--bf16", "false"]
    # TRL defaults transformers' deprecated name (gradient_checkpointing: true), which warns in every run.
    checkpointing = ("activation_checkpointing", "gradient_checkpointing")
    if "activation_checkpointing" in fields and not any(map(given, checkpointing)):
        argv += ["--activation_checkpointing", "true"]
    from trl import TrlParser

    class RecipeParser(TrlParser):
        def error(self, message):  # one line, as every other user mistake
            self.exit(2, f"error: {message} (see --help)\n")

    try:
        parsed = RecipeParser(dataclass_types).parse_args_and_config(argv)
    except ValueError as e:  # unknown keys in the YAML, or values transformers rejects
        raise ConfigError(" ".join(str(e).split())) from None
    for obj in parsed:
        check_fields(obj)
    training = next(p for p in parsed if hasattr(p, "output_dir"))
    if not given("output_dir"):  # named after the config: outputs/demo/judge for configs/demo/judge.yaml
        training.output_dir = str(Path("outputs") / preset_name(argv) / (Path(config).stem if config else step))
    if not given("report_to"):
        training.report_to = "tensorboard" if isinstance(training.report_to, str) else ["tensorboard"]
    return parsed


def step_output(preset: str, step: str, who: str, flag: str) -> str:
    """outputs/<preset>/<step> ("sft" or "rm"), the model that step wrote; missing, how to make it."""
    path = Path("outputs") / preset / step
    if not (path / "config.json").is_file():
        raise ConfigError(
            f"{who} needs step {1 if step == 'sft' else 2}'s model in {path}, which is missing. Run first:\n"
            f"  make {step} PRESET={preset}\n"
            f"or: python recipes/{step}.py --config recipes/configs/{preset}/{step}.yaml\n"
            f"(or pass --{flag} PATH)"
        )
    return str(path)


def preset_name(argv: list[str]) -> str:
    """The preset a command line uses: the folder of its --config file ("custom" without one)."""
    config = _argv_value(argv, "config")
    return Path(config).parent.name if config else "custom"


def _argv_value(argv: list[str], key: str) -> str | None:
    """The value of `--key value` or `--key=value` ("" for a bare last `--key`); None without the flag."""
    for i, a in enumerate(argv):
        if a == f"--{key}":
            return argv[i + 1] if i + 1 < len(argv) else ""
        if a.startswith(f"--{key}="):
            return a.split("=", 1)[1]
    return None


def read_config(path: str) -> dict:
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
    json_types = (str, int, float, bool, type(None), list, dict)
    record = {f.name: getattr(obj, f.name) for obj in parsed for f in dataclasses.fields(obj)}
    record = {k: v if isinstance(v, json_types) else str(v) for k, v in record.items()}
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
    # run_file last: another process of this launch may have claimed the folder since the first look
    if not overwrite and path.exists() and any(path.iterdir()) and not run_file.exists():
        raise ConfigError(
            f"output dir '{output_dir}' is not empty and was not written by rlhf-lite; "
            "pick another output_dir, or pass --overwrite_output_dir true."
        )
    if PartialState().is_main_process:
        if overwrite and path.exists():
            shutil.rmtree(path)  # old metrics, logs and checkpoints must not mix with the new run
        path.mkdir(parents=True, exist_ok=True)
        atomic.write_text(run_file, json.dumps(record, indent=1, ensure_ascii=False))
    return False
