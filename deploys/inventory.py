"""pyinfra CLI inventory built from the stack's config, so the CLI provisions exactly what
`pulumi up` would:

    pyinfra deploys/inventory.py deploys/provision.py            # every node of Pulumi.dev.yaml
    RVS_STACK=prod pyinfra deploys/inventory.py deploys/provision.py --limit gpu1

Loading it validates the stack config and prepares the controller's artifacts (the .debs, the
wheelhouse of each flavor, the model: cached, so only the first load downloads); each host's data
carries its connection (host keys as `ssh.host_keys` says) and its `NodePlan`.
"""

import os
from pathlib import Path

import yaml

from components.debs import prepare_debs
from components.hosts import host_key_policy
from components.model_source import prepare_model
from components import node_plan as plans  # a module: pyinfra takes module-level tuples for host groups
from components.validation import CONFIG_NAMESPACE, load_stack_config
from components.wheels import prepare_wheelhouse
from deploys.runner import connection_data

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
    debs = prepare_debs(list(plans.SYSTEM_PACKAGES))
    wheelhouses = {flavor: prepare_wheelhouse(flavor) for flavor in {host.accelerator for host in config.hosts}}
    model = prepare_model(
        str(config.model.path) if config.model.path else None, config.model.huggingface, os.environ.get("HF_TOKEN")
    )
    entries = []
    for host in config.hosts:
        plan = plans.node_plan(
            host, config.software, config.network, debs, wheelhouses[host.accelerator], model,
            config.model.served_name, str(config.model.remote_path),
        )  # fmt: skip
        entries.append((host.name, {**connection_data(host, host_key_policy(host)), "plan": plan}))
    return entries


nodes = _hosts()
