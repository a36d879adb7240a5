"""Where the lab keeps its state, resolved from this package rather than the cwd."""

from pathlib import Path

from artifacts.paths import CACHE_DIR, REPO_ROOT

STATE_DIR = REPO_ROOT / ".lab"
LAB_CACHE_DIR = CACHE_DIR / "lab"
SSH_DIR = STATE_DIR / "ssh"
SSH_KEY = SSH_DIR / "id_ed25519"
SSH_CONFIG = SSH_DIR / "config"
INVENTORY_FILE = REPO_ROOT / "inventory" / "dev.yaml"


def host_dir(name: str) -> Path:
    """Per-host runtime directory: overlay upper/work dirs, mount point, pid records, console log."""
    return STATE_DIR / name


def relative_to_repo(path: Path) -> str:
    """Path as written into files others read (inventory), relative to the repository root."""
    return str(path.relative_to(REPO_ROOT))
