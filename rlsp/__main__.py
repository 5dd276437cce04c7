"""``python -m rlsp`` and ``accelerate launch -m rlsp``."""

import sys

from .cli import main

sys.exit(main())
