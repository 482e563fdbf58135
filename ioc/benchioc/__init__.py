"""bench-ioc: an EPICS soft IOC for a synchrotron motion test bench."""

__version__ = "0.1.0"
