"""pyinfra CLI deploy file: runs each host's steps (`steps` in its host data, see
`pyinfra_inventory.py`) in order, with the same deploys the Pulumi steps apply one by one."""

from pyinfra import host

from deploys.runner import resolve
from deploys.steps import STEPS

for step, spec in host.data.steps:
    resolve(STEPS[step].apply)(spec=spec)
