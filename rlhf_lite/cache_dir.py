"""Where rlhf-lite keeps what it derives: converted embedded models and adapted dataset rows."""

import os
from pathlib import Path


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir or os.environ.get("RLHF_LITE_CACHE") or Path.home() / ".cache" / "rlhf_lite").expanduser()
