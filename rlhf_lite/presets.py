"""The configurations the package ships: configs/presets/<preset>/<step>.yaml, configs/accelerate/
<name>.yaml and configs/deepspeed/<name>.json (the checkout's recipes/configs etc. link to them)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import ConfigError

CONFIGS = Path(__file__).parent / "configs"


def preset_file(preset: str, name: str) -> Path:
    """configs/presets/<preset>/<name>.yaml (which may not exist); an unknown preset is an error."""
    folder = CONFIGS / "presets" / preset
    if not preset or not folder.is_dir():
        known = sorted(p.name for p in (CONFIGS / "presets").iterdir() if p.is_dir())
        raise ConfigError(f"unknown preset '{preset}'; known: {', '.join(known)}")
    return folder / f"{name}.yaml"


def read_yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def accelerate_config(name: str, folder: Path) -> Path:
    """configs/accelerate/<name>.yaml, written into `folder` with its DeepSpeed file's absolute path
    (accelerate reads that path from the working directory)."""
    path = CONFIGS / "accelerate" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"unknown accelerate config '{name}'; known: {known}")
    config = read_yaml(path)
    deepspeed = config.get("deepspeed_config") or {}
    if "deepspeed_config_file" in deepspeed:
        deepspeed["deepspeed_config_file"] = str(CONFIGS / "deepspeed" / Path(deepspeed["deepspeed_config_file"]).name)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"accelerate_{name}.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out
