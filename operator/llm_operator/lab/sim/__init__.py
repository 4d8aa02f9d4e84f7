"""Simulators: an engine simulator (real HTTP server) and the trace-driven replica model."""
