"""Where the repository and the seed (conv_lyapunov_snn.py) live. Standard library
only, so scripts can look before importing torch."""
import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent.parent


def default_seed_dir() -> pathlib.Path:
    """$SNNCL_SEED_DIR, else ../shared/seed beside the repository, else
    /work/shared/seed (where CI keeps the shared folder)."""
    env = os.environ.get("SNNCL_SEED_DIR")
    if env:
        return pathlib.Path(env)
    candidates = (REPO.parent / "shared" / "seed", pathlib.Path("/work/shared/seed"))
    for d in candidates:
        if (d / "conv_lyapunov_snn.py").exists():
            return d
    return candidates[0]
