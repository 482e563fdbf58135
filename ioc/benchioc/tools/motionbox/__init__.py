"""`motion-box`: the seed's Motion Box command line, on the shared bench config.

- cli.py: the arguments, the commands and their exit codes (`main`);
- edits.py: the config edits (add, change, remove), checked, then written atomically;
- probe.py: the running bench over CA (which IOC serves the file, live status, whether a
  motor is homing before an edit), every IOC record named from records/spec.py;
- homing.py: `home`, through the IOC that serves the file or with the engine here;
- display.py: what the terminal shows (numbers, tables, the live homing progress).

Runs as `motion-box` or `python -m benchioc.tools.motionbox`.
"""

from .cli import main

__all__ = ["main"]
