"""``python -m rlsp`` and ``accelerate launch -m rlsp``."""

import sys

from rlsp.cli import main

sys.exit(main())
