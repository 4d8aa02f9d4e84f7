"""Each engine in one module: its arguments, metric names and request translation."""
