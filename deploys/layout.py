"""Where provisioning puts things on every node: one fixed layout, the same on all hosts.

    /opt/ray-vllm-stack/venv/                       the node's virtualenv (pinned package set)
    /opt/ray-vllm-stack/venv/ray-vllm-stack.lock    lock key + `pip freeze --all` right after install
    /var/cache/ray-vllm-stack/wheelhouse/<key>/     wheels pushed from the controller + MANIFEST.sha256
    /var/cache/ray-vllm-stack/debs/                 .deb files pushed for missing system packages
    /var/lib/ray-vllm-stack/models/<served name>/   model weights + MANIFEST.sha256
    /etc/ray-vllm-stack/node.env                    runtime environment (0644; secrets live elsewhere)
    /opt/ray-vllm-stack/bin/probes.py               the services' readiness probe
    /etc/systemd/system/<unit>.service              the services' units

Caches (wheelhouse, debs, weights) survive `pulumi destroy` unless a purge is asked for.
"""

VENV = "/opt/ray-vllm-stack/venv"
VENV_RECORD_NAME = "ray-vllm-stack.lock"
WHEELHOUSE_ROOT = "/var/cache/ray-vllm-stack/wheelhouse"
DEBS_DIR = "/var/cache/ray-vllm-stack/debs"
MODELS_ROOT = "/var/lib/ray-vllm-stack/models"
ENV_FILE = "/etc/ray-vllm-stack/node.env"
PROBE_PATH = "/opt/ray-vllm-stack/bin/probes.py"
UNIT_DIR = "/etc/systemd/system"

MANIFEST_NAME = "MANIFEST.sha256"
"""Every synced tree carries its manifest in `sha256sum` format, written last: a tree whose
manifest matches was pushed completely."""
