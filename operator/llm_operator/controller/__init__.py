"""The controller: kopf wiring (operator.py) and the level-triggered reconcile."""
