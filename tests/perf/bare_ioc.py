"""A bare pythonSoftIOC: 10 plain aIn records, nothing else; the benchmark's yardstick
for start-up time and resident memory. Usage: bare_ioc.py PREFIX (serves until killed).

Run with an environment from benchioc.epicsenv.loopback_env(server_port=...).
"""

from __future__ import annotations

import sys

from softioc import asyncio_dispatcher, builder, softioc

RECORDS = 10


def main() -> None:
    prefix = sys.argv[1] if len(sys.argv) > 1 else "BARE:"
    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    builder.SetDeviceName(prefix.rstrip(":"))
    for index in range(RECORDS):
        builder.aIn(f"AI{index}", initial_value=float(index))
    builder.LoadDatabase()
    softioc.iocInit(dispatcher)
    sys.stdout.write("bare ioc ready\n")
    sys.stdout.flush()
    dispatcher.wait_for_quit()
    softioc.safeEpicsExit(0)


if __name__ == "__main__":
    main()
