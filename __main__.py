"""The ray-vllm-stack program: read the typed stack config, compose the components, export outputs."""

import pulumi

from components.artifacts import DebPackages, ModelArtifact, Wheelhouse
from components.fingerprint import require_identical
from components.hosts import host_key_policy
from components.node import Node, NodeArgs
from components.node_plan import SYSTEM_PACKAGES, driver_install
from components.ray_cluster import RayCluster, RayClusterArgs
from components.secrets import ClusterSecrets, ClusterSecretsArgs
from components.serving_plan import serving_plan
from components.stack_inputs import read_stack_config, stop_on_config_error
from components.vllm_service import VllmService, VllmServiceArgs
from deploys.layout import MODELS_ROOT

config = read_stack_config()
model_path = f"{MODELS_ROOT}/{config.model.served_name}"
with stop_on_config_error():
    plan = serving_plan(config, model_path)


cluster_secrets = ClusterSecrets("cluster", ClusterSecretsArgs(ray_token=config.ray_token, api_key=config.api_key))

wheelhouse = Wheelhouse("wheelhouse", flavor=config.accelerator, purge_cache=config.purge_caches)
model = ModelArtifact(
    "model",
    path=config.model.path and str(config.model.path),
    huggingface=config.model.huggingface,
    hf_token=config.hf_token and config.hf_token.get_secret_value(),
    endpoint=config.model.hf_endpoint,
    purge_cache=config.purge_caches,
)
debs = DebPackages("debs", packages=list(SYSTEM_PACKAGES), purge_cache=config.purge_caches)

nodes = {
    host.name: Node(
        host.name,
        NodeArgs(
            host=host,
            software=config.software,
            network=config.network,
            wheelhouse=wheelhouse,
            model=model,
            debs=debs,
            served_name=config.model.served_name,
            keep_previous_models=config.model.keep_previous,
            env_overrides=config.network.env,
            driver_install=driver_install(config),
            host_keys=host_key_policy(host),
            purge_caches=config.purge_caches,
        ),
    )
    for host in config.hosts
}


fingerprints = pulumi.Output.all(**{name: node.fingerprint for name, node in nodes.items()}).apply(require_identical)

ray = RayCluster(
    "ray",
    RayClusterArgs(
        hosts=config.hosts,
        head=config.head,
        ports=config.ports,
        ray=config.ray,
        security=config.security,
        ray_token=pulumi.Output.all(cluster_secrets.ray_token, fingerprints).apply(lambda values: values[0]),
        host_keys={host.name: host_key_policy(host) for host in config.hosts},
        nodes_ready=nodes,
    ),
)

vllm = VllmService(
    "vllm",
    VllmServiceArgs(
        config=config,
        plan=plan,
        api_key=cluster_secrets.api_key,
        host_keys=host_key_policy(config.head),
        after=[*ray.ready, nodes[config.head.name]],
    ),
)

pulumi.export("endpoint_url", vllm.endpoint_url)
pulumi.export("openai_base_url", vllm.openai_base_url)
pulumi.export("api_key", cluster_secrets.api_key)
pulumi.export("model", config.model.served_name)
pulumi.export("ray_address", ray.address)
pulumi.export("dashboard_url", ray.dashboard_url)
pulumi.export("layer_partition", plan.layer_partition)
pulumi.export("max_model_len", plan.max_model_len)
pulumi.export("required_ports", ray.required_ports)
pulumi.export(
    "nodes",
    [
        {"name": host.name, "address": str(host.address), "role": host.role, "accelerator": host.accelerator,
         "gpus": [gpu.model_dump() for gpu in host.gpus]}
        for host in config.hosts
    ],
)  # fmt: skip
pulumi.export("fingerprints", fingerprints)
