"""Where provisioning and the services put things on every node: one fixed layout, the same on all
hosts, and the only place a node path is written down.

    /opt/ray-vllm-stack/venv/                       the node's virtualenv (pinned package set)
    /opt/ray-vllm-stack/venv/ray-vllm-stack.lock    lock key + `pip freeze --all` right after install
    /opt/ray-vllm-stack/bin/probes.py               the services' readiness probe
    /var/cache/ray-vllm-stack/wheelhouse/<key>/     wheels pushed from the controller + MANIFEST.sha256
    /var/cache/ray-vllm-stack/debs/                 .deb files pushed for missing system packages
    /var/lib/ray-vllm-stack/models/<served name>/   model weights + MANIFEST.sha256
    /var/lib/ray-vllm-stack/ray/                    Ray's temp dir (sessions, logs, sockets)
    /etc/ray-vllm-stack/node.env                    runtime environment (0644; secrets live elsewhere)
    /etc/ray-vllm-stack/ray_token                   the Ray auth token (0600)
    /etc/ray-vllm-stack/vllm.env                    VLLM_API_KEY (0600)
    /etc/systemd/system/<unit>.service              the services' units
    /dev/shm/psm_*                                  vLLM's shared memory, removed when it stops
    /usr/share/keyrings/ray-vllm-stack-nvidia.asc   the NVIDIA repository's key (driver install only)
    /etc/apt/sources.list.d/ray-vllm-stack-nvidia.list   that repository

Caches (wheelhouse, debs, weights) survive `pulumi destroy` unless a purge is asked for.
"""

VENV = "/opt/ray-vllm-stack/venv"
VENV_RECORD_NAME = "ray-vllm-stack.lock"
PROBE_PATH = "/opt/ray-vllm-stack/bin/probes.py"
WHEELHOUSE_ROOT = "/var/cache/ray-vllm-stack/wheelhouse"
DEBS_DIR = "/var/cache/ray-vllm-stack/debs"
MODELS_ROOT = "/var/lib/ray-vllm-stack/models"
RAY_TEMP_DIR = "/var/lib/ray-vllm-stack/ray"
CONFIG_DIR = "/etc/ray-vllm-stack"
ENV_FILE = f"{CONFIG_DIR}/node.env"
RAY_TOKEN_FILE = f"{CONFIG_DIR}/ray_token"
VLLM_SECRETS_FILE = f"{CONFIG_DIR}/vllm.env"
"""0600: holds VLLM_API_KEY, which vLLM requires on every /v1 request."""
UNIT_DIR = "/etc/systemd/system"
VLLM_SHM_LEFTOVERS = "/dev/shm/psm_*"
"""vLLM's shared-memory segments (240 MiB sparse each) stay behind when the server stops."""
NVIDIA_KEYRING = "/usr/share/keyrings/ray-vllm-stack-nvidia.asc"
NVIDIA_SOURCE_LIST = "/etc/apt/sources.list.d/ray-vllm-stack-nvidia.list"
