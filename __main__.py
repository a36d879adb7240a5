"""The ray-vllm-stack program: read the typed stack config, compose the components, export outputs."""

import os

import pulumi

from components.artifacts import DebPackages, ModelArtifact, PythonInterpreter, Wheelhouse
from components.cloud_hosts import CloudHosts, CloudHostsArgs, address_map_from
from components.cluster_hosts import resolved_config
from components.node import Node, NodeArgs
from components.secrets import ClusterSecrets, ClusterSecretsArgs, GeneratedCertificate
from components.serving import Serving, ServingArgs
from components.stack_inputs import identical_nodes, read_stack_config, stop_on_config_error
from deploys.layout import PYTHON_PREFIX
from stack.cloud import hourly_cost
from stack.hosts import host_key_policy
from stack.node_steps import SYSTEM_PACKAGES, NodeInputs, pushed_release, pushed_releases, stack_venv
from stack.serving import serving_plan
from stack.tls import certificate_fingerprint

config = read_stack_config()
owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
node_inputs = {host.name: NodeInputs.from_config(config, host, owner) for host in config.hosts}
with stop_on_config_error():
    plan = serving_plan(config, node_inputs[config.head.name].model_path())

# Rented hosts first: their addresses exist once their instances do; every host of the stack then
# reaches the node, Ray and vLLM components the same way, through `addressed`.
cloud = None
if config.cloud is not None:
    address_map = address_map_from(os.environ)
    cloud = CloudHosts("cloud", CloudHostsArgs(config=config, owner=owner, address_map=address_map))
addressed = resolved_config(config, cloud.hosts if cloud is not None else [])


sudo_password = config.sudo_password and pulumi.Output.secret(config.sudo_password.get_secret_value())
cluster_secrets = ClusterSecrets("cluster", ClusterSecretsArgs(ray_token=config.ray_token, api_key=config.api_key))

if config.security.tls == "self-signed":
    generated = GeneratedCertificate("api-certificate", addressed.apply(lambda known: str(known.head.address)))
    certificate = pulumi.Output.all(generated.certificate, generated.key)
    tls_fingerprint = generated.fingerprint
elif config.security.tls == "files":
    cert_pem = config.security.tls_cert_file.read_text()
    certificate = pulumi.Output.secret([cert_pem, config.security.tls_key_file.read_text()])
    tls_fingerprint = pulumi.Output.from_input(certificate_fingerprint(cert_pem))
else:
    certificate, tls_fingerprint = None, None

python = PythonInterpreter(
    "python", PYTHON_PREFIX, config.python.source, config.python.sha256, purge_cache=config.purge_caches
)
wheelhouse = Wheelhouse("wheelhouse", flavor=config.accelerator, purge_cache=config.purge_caches)
model = ModelArtifact(
    "model",
    path=config.model.path and str(config.model.path),
    huggingface=config.model.huggingface,
    hf_token=config.hf_token and config.hf_token.get_secret_value(),
    endpoint=config.model.hf_endpoint,
    purge_cache=config.purge_caches,
)
debs = {
    release: DebPackages(
        f"debs-{release}", list(SYSTEM_PACKAGES), release, config.packages, purge_cache=config.purge_caches
    )
    for release in pushed_releases(config.hosts)
}

nodes = {
    host.name: Node(
        host.name,
        NodeArgs(
            inputs=node_inputs[host.name],
            python=python,
            wheelhouse=wheelhouse,
            model=model,
            debs=debs.get(pushed_release(host)),
            host_keys=host_key_policy(host),
            purge_caches=config.purge_caches,
            sudo_password=sudo_password,
            addressed=addressed.apply(
                lambda known, name=host.name: NodeInputs.from_config(known, known.host(name), owner)
            ),
        ),
    )
    for host in config.hosts
}


fingerprints = pulumi.Output.all(**{name: node.fingerprint for name, node in nodes.items()}).apply(identical_nodes)

serving = Serving(
    "serving",
    ServingArgs(
        config=config,
        plan=plan,
        venv=stack_venv(config.accelerator),
        # Only once every node holds the same interpreter, packages and weights (`identical_nodes`).
        ray_token=pulumi.Output.all(cluster_secrets.ray_token, fingerprints).apply(lambda values: values[0]),
        api_key=cluster_secrets.api_key,
        after=list(nodes.values()),
        certificate=certificate,
        sudo_password=sudo_password,
        addressed=addressed,
    ),
)

pulumi.export("endpoint_url", serving.endpoint_url)
pulumi.export("openai_base_url", serving.openai_base_url)
pulumi.export("api_key", cluster_secrets.api_key)
pulumi.export("tls_fingerprint", tls_fingerprint)
pulumi.export("model", config.model.served_name)
pulumi.export("ray_address", serving.ray_address)
pulumi.export("dashboard_url", serving.dashboard_url)
pulumi.export("layer_partition", plan.layer_partition)
pulumi.export("max_model_len", plan.max_model_len)
pulumi.export("required_ports", serving.required_ports)
pulumi.export(
    "nodes",
    addressed.apply(lambda known: [
        {"name": host.name, "address": str(host.address), "role": host.role, "accelerator": host.accelerator,
         "gpus": [gpu.model_dump() for gpu in host.gpus]}
        for host in known.hosts
    ]),
)  # fmt: skip
pulumi.export("fingerprints", fingerprints)
if cloud is not None:
    pulumi.export("hourly_cost", hourly_cost(config.cloud))
    pulumi.export("cloud_instances", cloud.instance_ids)
