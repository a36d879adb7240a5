"""Floor 4, the Pulumi components (`Node`, `RayCluster`, `VllmService`, `ClusterSecrets`) and the thin
dynamic providers they are built from (node steps, controller caches, generated secrets), and only
those: each calls plain functions of `stack/`, `deploys/` and `artifacts/` below it."""
