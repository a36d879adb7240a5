"""Where provisioning and the services put things on every node: one fixed layout, the same on all
hosts, and the only place a node path is written down.

    /opt/ray-vllm-stack/python/<X.Y.Z>/             the stack's CPython, pushed from the controller + MANIFEST.sha256
    /opt/ray-vllm-stack/venvs/<version>/            one virtualenv per package-set version (lock + plugins), side by side
    /opt/ray-vllm-stack/venvs/<version>/ray-vllm-stack.lock   lock key + `pip freeze --all` right after install
    /opt/ray-vllm-stack/install-cache/              uv's unpacked wheels while an install runs (removed after it)
    /opt/ray-vllm-stack/bin/probes.py               the services' readiness probe
    /opt/ray-vllm-stack/bin/api_front.py            the API front: the key on every path but /health
    /var/cache/ray-vllm-stack/wheelhouse/<key>/     wheels pushed from the controller + MANIFEST.sha256
    /var/cache/ray-vllm-stack/debs/                 .deb files pushed for missing system packages
    /var/lib/ray-vllm-stack/models/<served name>-<revision digest>/   model weights + MANIFEST.sha256, one folder per revision
    /var/lib/ray-vllm-stack/owner                   `<project>/<stack>` of the one stack that runs on the host
    /var/lib/ray-vllm-stack/ray/                    Ray's temp dir (sessions, logs, sockets), the service user's
    /var/lib/ray-vllm-stack/home/                   the service user's home (vLLM's and torch's caches)
    /var/lib/ray-vllm-stack/tmp/                    TMPDIR of Ray and vLLM (their ZMQ sockets meet there)
    /etc/ray-vllm-stack/node.env                    runtime environment (0644; secrets live elsewhere)
    /etc/ray-vllm-stack/secrets/                    0700, the service user's: files written atomically inside
    /etc/ray-vllm-stack/secrets/ray_token           the Ray auth token (0600)
    /etc/ray-vllm-stack/secrets/vllm.env            VLLM_API_KEY for vLLM (0600)
    /etc/ray-vllm-stack/secrets/api_front.env       the same key for the API front (0600)
    /etc/ray-vllm-stack/secrets/tls.crt, tls.key    the API front's certificate and key (0600), with TLS on
    /etc/ray-vllm-stack/firewall.nft                the host firewall's rules: nftables table `inet ray_vllm_stack`
    /var/lib/ray-vllm-stack/firewall.loaded         the rules' digest and the table as loading them left it
    /etc/systemd/system/<unit>.service              the services' units (rvs-firewall.service loads the rules at boot)
    /var/lib/ray-vllm-stack/release/verified/       root's 0700 copy of the service units and secret files of the last
                                                    release whose endpoint was verified: what a failed upgrade returns to
    /var/lib/ray-vllm-stack/release/<unit>.after    what the unit was last started after (the Ray units' invocations)
    /dev/shm/psm_*                                  vLLM's shared memory, removed when it stops
    /usr/share/keyrings/ray-vllm-stack-nvidia.asc   the NVIDIA repository's key (driver install only)
    /etc/apt/sources.list.d/ray-vllm-stack-nvidia.list   that repository

Caches (wheelhouse, debs, weights) and the interpreter survive `pulumi destroy` unless a purge is asked for.
"""

from artifacts.packages.flavors import NODE_PYTHON_VERSION

PYTHON_ROOT = "/opt/ray-vllm-stack/python"
PYTHON_PREFIX = f"{PYTHON_ROOT}/{NODE_PYTHON_VERSION}"
"""The stack's own interpreter (`artifacts.python_build`), the one every lock targets; built for this
very prefix, so it runs from here only."""
PYTHON_INTERPRETER = f"{PYTHON_PREFIX}/bin/python3"

VENVS_ROOT = "/opt/ray-vllm-stack/venvs"
"""One venv per package-set version: an upgrade installs the new one beside the one the services run."""
LEGACY_VENV = "/opt/ray-vllm-stack/venv"
"""The one venv of stacks made before versioned venvs; removed once no unit runs it."""
VENV_RECORD_NAME = "ray-vllm-stack.lock"
INSTALL_CACHE = "/opt/ray-vllm-stack/install-cache"
"""uv's cache during an install: on the venvs' file system, so the venv hardlinks the unpacked wheels
instead of copying gigabytes (a cache in a tmpfs /tmp would also hold them in memory). Removed once
the venv is recorded: the venv's links keep the files, and nothing is left to prune."""
PROGRAMS_DIR = "/opt/ray-vllm-stack/bin"
"""Node-side programs of `deploys/` (run with the venv's Python)."""
PROBE_PATH = f"{PROGRAMS_DIR}/probes.py"
WHEELHOUSE_ROOT = "/var/cache/ray-vllm-stack/wheelhouse"
DEBS_DIR = "/var/cache/ray-vllm-stack/debs"
MODELS_ROOT = "/var/lib/ray-vllm-stack/models"
OWNER_FILE = "/var/lib/ray-vllm-stack/owner"
"""Which stack runs on the host: every path, unit, port and token file of the layout is the same for
all stacks, so a second stack on a host is refused before it changes anything."""
STATE_DIRECTORY_NAME = "ray-vllm-stack"
"""Under /var/lib: systemd's `StateDirectory=` names are relative to it."""
RAY_TEMP_DIR = f"/var/lib/{STATE_DIRECTORY_NAME}/ray"
SERVICE_HOME = f"/var/lib/{STATE_DIRECTORY_NAME}/home"
SERVICE_TMP = f"/var/lib/{STATE_DIRECTORY_NAME}/tmp"
"""TMPDIR of Ray and vLLM: vLLM's engine and its Ray workers on the head meet through ZMQ sockets in
the temp dir, and each unit's PrivateTmp= /tmp is its own."""
SERVICE_STATE_DIRECTORIES = (f"{STATE_DIRECTORY_NAME}/ray", f"{STATE_DIRECTORY_NAME}/home", f"{STATE_DIRECTORY_NAME}/tmp")
"""systemd `StateDirectory=` values: the service user's writable places (Ray's temp dir, its home, the
shared temp dir)."""
CONFIG_DIR = "/etc/ray-vllm-stack"
ENV_FILE = f"{CONFIG_DIR}/node.env"
SECRETS_DIR = f"{CONFIG_DIR}/secrets"
"""0700 and the service user's: a secret file is never readable by anyone else, not even while written."""
RAY_TOKEN_FILE = f"{SECRETS_DIR}/ray_token"
VLLM_SECRETS_FILE = f"{SECRETS_DIR}/vllm.env"
"""Holds VLLM_API_KEY, which vLLM requires on /v1 behind the front."""
API_FRONT_KEY_FILE = f"{SECRETS_DIR}/api_front.env"
"""The same key for the API front, which requires it on every path but /health; a file of its own,
so each unit owns (and removes) only its own files."""
TLS_CERT_FILE = f"{SECRETS_DIR}/tls.crt"
TLS_KEY_FILE = f"{SECRETS_DIR}/tls.key"
LEGACY_SECRET_FILES = (f"{CONFIG_DIR}/ray_token", f"{CONFIG_DIR}/vllm.env")
"""Where stacks made before the service user kept root's secrets; removed when a service is applied."""
RELEASE_DIR = f"/var/lib/{STATE_DIRECTORY_NAME}/release"
VERIFIED_RELEASE = f"{RELEASE_DIR}/verified"
RESTART_MARKERS = "/run/ray-vllm-stack"
"""`<unit>.restart` here: a file the unit reads changed, so the service restarts once."""
UNIT_DIR = "/etc/systemd/system"
FIREWALL_TABLE = "ray_vllm_stack"
"""The stack's own nftables table (family `inet`): the only one its firewall writes or deletes."""
FIREWALL_RULES = f"{CONFIG_DIR}/firewall.nft"
FIREWALL_RECORD = f"/var/lib/{STATE_DIRECTORY_NAME}/firewall.loaded"
FIREWALL_UNIT = "rvs-firewall.service"
VLLM_SHM_LEFTOVERS = "/dev/shm/psm_*"
"""vLLM's shared-memory segments (240 MiB sparse each) stay behind when the server stops."""
NVIDIA_KEYRING = "/usr/share/keyrings/ray-vllm-stack-nvidia.asc"
NVIDIA_SOURCE_LIST = "/etc/apt/sources.list.d/ray-vllm-stack-nvidia.list"


def venv_path(version: str) -> str:
    """The venv of one package-set version (`stack.node_steps.env_version`)."""
    return f"{VENVS_ROOT}/{version}"
