"""``python -m greenml`` is the ``greenml`` command."""

import sys

from greenml.cli import main

sys.exit(main())
