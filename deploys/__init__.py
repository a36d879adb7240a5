"""Node provisioning with pyinfra: facts (read-only probes), operations (desired state -> commands),
deploys (the steps a node goes through) and a runner that applies a deploy to hosts from Python.

The Pulumi side (`components.provisioning`) calls the runner once per host and step; the same
deploys run under the pyinfra CLI: `pyinfra pyinfra_inventory.py pyinfra_deploy.py`.
"""
