"""Container engines the `docker` runtime talks to: `podman` starts Podman's Docker-compatible service and
builds a small base image without a registry (tests, local use)."""
