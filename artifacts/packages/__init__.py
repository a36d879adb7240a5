"""Software that runs on the cluster nodes: hash-locked package sets (`cpu/`, `nvidia/`) and the
wheelhouse that carries them to hosts without an index. Part of `artifacts/` (floor 1)."""
