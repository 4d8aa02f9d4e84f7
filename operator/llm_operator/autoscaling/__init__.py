"""Autoscaler: Prometheus signals, the pure policy, and the actuator."""
