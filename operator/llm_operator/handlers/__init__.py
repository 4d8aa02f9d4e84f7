"""Thin kopf handlers: validate, build, apply, report."""
