"""Floor 1, the controller's artifacts: the nodes' package sets and wheelhouses, Debian packages,
model weights and their sha256 manifests, each fetched or built once and cached under `.cache/`.
Imports nothing else of ours: whatever provisions or serves builds on these."""
