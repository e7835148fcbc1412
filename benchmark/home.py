"""Where melbench keeps its caches, corpora and checkpoints."""

import os
from pathlib import Path


def melbench_home() -> Path:
    """Return `$MELBENCH_HOME`, defaulting to `~/.cache/melbench`.

    Returns:
        The folder (not created here).
    """
    env = os.environ.get("MELBENCH_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "melbench"
