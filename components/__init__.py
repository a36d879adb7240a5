"""Floor 4, the Pulumi components (`Node`, `Serving`, `ClusterSecrets`) and the thin
dynamic providers they are built from (node steps, the serving release, controller caches, generated secrets), and only
those: each calls plain functions of `stack/`, `deploys/` and `artifacts/` below it."""
