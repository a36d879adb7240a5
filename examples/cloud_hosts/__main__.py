"""A Pulumi program that rents a stack's cloud hosts and does nothing else: the `CloudHosts`
component for the `cloud:` section of the selected stack's config (`Pulumi.<stack>.yaml`, validated
as the main program does), no provisioning, no Ray, no vLLM. For trying a cloud account, the
instance types and the security group before serving on them, and for the engine tests against
moto, whose instances boot nothing.

Outputs: `hosts` (per host: instance id, private and public address), `hourly_cost`.
"""

import os

import pulumi

from components.cloud_hosts import CloudHosts, CloudHostsArgs, address_map_from
from components.stack_inputs import read_stack_config, stop_on_config_error
from stack.cloud import hourly_cost
from stack.validation import ConfigError

config = read_stack_config()
if config.cloud is None:
    with stop_on_config_error():
        raise ConfigError(["cloud: this program rents the `cloud:` section's hosts; the stack has none"])
owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
cloud = CloudHosts("cloud", CloudHostsArgs(config=config, owner=owner, address_map=address_map_from(os.environ)))

pulumi.export("hourly_cost", hourly_cost(config.cloud))
pulumi.export("security_group_id", cloud.security_group_id)
pulumi.export(
    "hosts",
    pulumi.Output.all(cloud.instance_ids, *(pulumi.Output.all(h.private_address, h.public_address) for h in cloud.hosts))
    .apply(lambda values: {
        host.name: {"instance_id": values[0][host.name], "private_address": address[0], "public_address": address[1]}
        for host, address in zip(cloud.hosts, values[1:])
    }),
)  # fmt: skip
