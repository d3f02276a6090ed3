"""greenml: energy-aware AutoML benchmarking.

The package follows the data path of a search: command line (``cli``) -> configuration
(``config``) -> measurement (``measure``: energy meters, carbon, inference benchmark).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
