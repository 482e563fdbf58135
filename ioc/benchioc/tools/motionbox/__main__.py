"""`python -m benchioc.tools.motionbox` (the tests and the GUI start it this way)."""

from .cli import main

raise SystemExit(main())
