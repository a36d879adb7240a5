"""Software that runs on the cluster nodes: hash-locked package sets, the wheelhouse that carries
them to hosts without an index, and the commands that install them there."""
