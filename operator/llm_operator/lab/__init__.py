"""The lab: local control plane, simulators, benchmark, demo and replay (never in an image)."""
