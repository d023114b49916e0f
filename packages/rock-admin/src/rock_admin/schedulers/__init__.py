"""Schedulers: where sandboxes run. `local` is the runtime itself; `ray` (`ray.RayScheduler`) places them on
a Ray cluster, with a node agent per node that runs the node's own runtime."""
