"""`python -m roll ...` is `roll-agentic ...`."""

import sys

from roll.cli import main

sys.exit(main())
