"""`python -m benchioc.tools.benchdata`: the `bench-data` command."""

from .cli import main

if __name__ == "__main__":
    main()
