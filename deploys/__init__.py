"""Floor 2, node provisioning with pyinfra and nothing else: facts (read-only probes), operations
(desired state -> commands), deploys (the steps a node goes through), the services' units, a runner
that applies a deploy to hosts from Python, and `layout`, the one list of every path on a node.

Imports only `artifacts/` below it, never the stack's config or Pulumi: it takes its own plain specs
(`deploys.specs`, an `SshTarget` per host). The Pulumi side (`components.provisioning`) calls the
runner once per host and step; the same deploys run under the pyinfra CLI (`pyinfra_inventory.py`).
"""
