"""Where rlhf-lite keeps what it derives: converted embedded models and adapted dataset rows."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """`cache_dir` if given, else $RLHF_LITE_CACHE, else ~/.cache/rlhf_lite."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("RLHF_LITE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlhf_lite"
