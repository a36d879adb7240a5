"""Where the controller keeps things: this checkout, and the caches under it (`.cache/`).

Every controller-side path of the project starts here, so a cache moves in one place.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"
