"""``python -m daskref``."""

import sys

from daskref.cli import main

sys.exit(main())
