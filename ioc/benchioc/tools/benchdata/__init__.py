"""`bench-data`: list, look at, verify, cite and reduce the bench's scan files
(benchioc.data.nexus writes them). The command line is cli.py."""
