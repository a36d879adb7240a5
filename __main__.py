"""The ray-vllm-stack program: read the typed stack config, compose the components, export outputs."""

import pulumi

from components.secrets import ClusterSecrets, ClusterSecretsArgs
from components.stack_inputs import read_stack_config

config = read_stack_config()

cluster_secrets = ClusterSecrets(
    "cluster", ClusterSecretsArgs(ray_token=config.ray_token, api_key=config.api_key)
)

pulumi.export("api_key", cluster_secrets.api_key)
pulumi.export("model", config.model.served_name)
