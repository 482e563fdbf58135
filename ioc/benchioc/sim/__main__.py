"""`python -m benchioc.sim`: the same as `bench-sim`."""

import sys

from .server import main

sys.exit(main())
