"""pyinfra CLI deploy file: provisions each host of the inventory from its `plan` host data
(see `deploys/inventory.py`), running the same deploys the Pulumi steps run one by one."""

from pyinfra import host

from deploys.node import provision_node

provision_node(host.data.plan)
