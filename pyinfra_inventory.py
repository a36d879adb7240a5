"""pyinfra CLI inventory built from a stack's config, so the CLI provisions a node exactly as
`pulumi up` would (the same table of steps, `stack.node_steps.NODE_STEPS`, the same specs):

    pyinfra -y pyinfra_inventory.py pyinfra_deploy.py                    # every node of Pulumi.dev.yaml
    RVS_STACK=prod pyinfra -y pyinfra_inventory.py pyinfra_deploy.py --limit gpu1

Run it from the project folder. Loading it validates `Pulumi.<RVS_STACK>.yaml` (default `dev`) and
prepares the controller's artifacts (the .debs of each release of hosts without a route out, the
interpreter, each flavor's wheelhouse, the model: cached, so only the first load downloads or builds);
each host's data carries its connection and its steps. Provisioning needs none of the stack's
secrets; a gated model's token comes from HF_TOKEN in the environment.
"""

import os
from pathlib import Path

import yaml

from artifacts.debs import prepare_debs
from artifacts.python_build import prepare_python
from artifacts.weights import prepare_model
from artifacts.wheels import prepare_wheelhouse
from deploys.layout import PYTHON_PREFIX
from deploys.runner import connection_data
from stack import node_steps  # a module: pyinfra takes every module-level list or tuple for a host group
from stack.config import StackConfig
from stack.hosts import host_key_policy, ssh_target
from stack.validation import CONFIG_NAMESPACE, load_stack_config


def stack_config(project: Path, stack: str) -> StackConfig:
    """`Pulumi.<stack>.yaml`'s plain keys, validated as `pulumi preview` does (secrets left out)."""
    document = yaml.safe_load((project / f"Pulumi.{stack}.yaml").read_text()) or {}
    raw = {}
    for key, value in (document.get("config") or {}).items():
        namespace, _, name = key.partition(":")
        if namespace == CONFIG_NAMESPACE and not (isinstance(value, dict) and "secure" in value):
            raw[name] = value
    return load_stack_config(raw, set(), project)


def host_entries(config: StackConfig, owner: str | None = None) -> list[tuple[str, dict]]:
    """(host name, pyinfra host data) per host: its SSH connection and `steps`, a list of
    (step name, spec) in table order. `owner`: the stack claiming the hosts, as `pulumi up` does."""
    debs = {
        release: prepare_debs(list(node_steps.SYSTEM_PACKAGES), release, config.packages)
        for release in node_steps.pushed_releases(config.hosts)
    }
    python = prepare_python(PYTHON_PREFIX, config.python.source, config.python.sha256)
    wheelhouses = {flavor: prepare_wheelhouse(flavor) for flavor in {host.accelerator for host in config.hosts}}
    source = config.model
    model = prepare_model(
        str(source.path) if source.path else None, source.huggingface, os.environ.get("HF_TOKEN"), source.hf_endpoint
    )
    entries = []
    for host in config.hosts:
        artifacts = {"debs": debs.get(node_steps.pushed_release(host)), "wheelhouse": wheelhouses[host.accelerator]}
        inputs = node_steps.NodeInputs.from_config(config, host, owner, model=model, python=python, **artifacts)
        steps = list(node_steps.node_specs(inputs).items())
        entries.append((host.name, {**connection_data(ssh_target(host), host_key_policy(host)), "steps": steps}))
    return entries


def stack_owner(project: Path, stack: str) -> str:
    """`<project>/<stack>` as `pulumi up` claims the hosts with, so the CLI and Pulumi agree."""
    return f"{yaml.safe_load((project / 'Pulumi.yaml').read_text())['name']}/{stack}"


_stack = os.environ.get("RVS_STACK", "dev")
nodes = host_entries(stack_config(Path.cwd(), _stack), stack_owner(Path.cwd(), _stack))
