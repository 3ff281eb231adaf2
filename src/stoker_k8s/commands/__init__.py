"""Sub-commands of `stoker` that need the Kubernetes client (loaded lazily by name)."""
