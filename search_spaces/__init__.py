"""Built-in search spaces, one module each (they arrive with `greenml search`)."""
