"""Floor 3, the pure stack logic, with no Pulumi in it: the config model (`config`) and its checks
(`validation`), the capacity planner (`planner`) and what it decides for serving (`serving`), the
renderers of units, env files and command lines (`ray_units`, `vllm_unit`, `systemd_unit`), and the
one ordered table of node steps (`node_steps`). It turns config into plain specs for `deploys/`;
`components/` turns those into Pulumi resources. Imports `deploys/` and `artifacts/` below it only.
"""
