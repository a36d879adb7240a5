"""pyinfra CLI inventory built from the stack's config, so the CLI provisions exactly what
`pulumi up` would:

    pyinfra deploys/inventory.py deploys/provision.py            # every node of Pulumi.dev.yaml
    RVS_STACK=prod pyinfra deploys/inventory.py deploys/provision.py --limit gpu1

Loading it validates the stack config and prepares the controller's artifacts (the .debs, the
wheelhouse of each flavor, the model: cached, so only the first load downloads); each host's data
carries its connection and its `NodePlan`. RVS_SSH_KNOWN_HOSTS / RVS_SSH_STRICT_HOST_KEYS set the
host key policy (the lab's hosts get new keys on every boot: `/dev/null` and `no`).
"""

import os
from pathlib import Path

import yaml

from components.debs import prepare_debs
from components.model_source import prepare_model
from components.node_plan import SYSTEM_PACKAGES, node_plan
from components.validation import CONFIG_NAMESPACE, load_stack_config
from components.wheels import prepare_wheelhouse

_ROOT = Path(__file__).resolve().parent.parent


def _stack_config():
    stack = os.environ.get("RVS_STACK", "dev")
    document = yaml.safe_load((_ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    raw, secret_keys = {}, set()
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == CONFIG_NAMESPACE:
            if isinstance(value, dict) and "secure" in value:
                secret_keys.add(name)  # encrypted; provisioning needs none of them (HF_TOKEN comes from the env)
                continue
            raw[name] = value
    return load_stack_config(raw, secret_keys, _ROOT)


def _hosts() -> list:
    config = _stack_config()
    debs = prepare_debs(list(SYSTEM_PACKAGES))
    wheelhouses = {flavor: prepare_wheelhouse(flavor) for flavor in {host.accelerator for host in config.hosts}}
    model = prepare_model(
        str(config.model.path) if config.model.path else None, config.model.huggingface, os.environ.get("HF_TOKEN")
    )
    entries = []
    for host in config.hosts:
        plan = node_plan(
            host, config.software, config.network, debs, wheelhouses[host.accelerator], model,
            config.model.served_name, str(config.model.remote_path),
        )  # fmt: skip
        data = {
            "ssh_hostname": str(host.address),
            "ssh_user": host.ssh.user,
            "ssh_port": host.ssh.port,
            "ssh_key": str(host.ssh.key_file),
            "ssh_known_hosts_file": os.environ.get("RVS_SSH_KNOWN_HOSTS", "~/.ssh/known_hosts"),
            "ssh_strict_host_key_checking": os.environ.get("RVS_SSH_STRICT_HOST_KEYS", "accept-new"),
            "host_config": host,
            "plan": plan,
        }
        entries.append((host.name, data))
    return entries


nodes = _hosts()
