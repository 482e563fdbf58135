"""Run one sync scan from the command line over CA (no IOC): a bench check and the
harness of the sync integration tests.

    python -m benchioc.tools.scan --config configs/bench.yaml --motor A --mode Fly \
        --start 0 --end 2 --points 11 --exposure 0.01 --period 0.05 --no-require-homed

Prints the final update as one JSON line; exit 0 for Done, 1 otherwise, 2 if refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
from pathlib import Path

from ..clients.motor import EpicsMotor
from ..clients.scan import CaCamera, CaTriggerBox, build_controller
from ..config import ConfigError, load
from ..engines.sync.devices import DeviceError
from ..engines.sync.model import ScanMode, ScanRefused, ScanState

log = logging.getLogger(__name__)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchioc.tools.scan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("configs/bench.yaml"))
    parser.add_argument("--motor", required=True)
    parser.add_argument("--mode", choices=[m.label for m in ScanMode], default="Step")
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--end", type=float, required=True)
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--frames-per-point", type=int, default=1)
    parser.add_argument("--exposure", type=float, default=0.01)
    parser.add_argument("--period", type=float, default=0.05)
    parser.add_argument("--settle", type=float, default=0.0)
    parser.add_argument("--dark-frames", type=int, default=0)
    parser.add_argument("--flat-frames", type=int, default=0,
                        help="needs detector.flat_motor in the config")
    parser.add_argument("--no-require-homed", action="store_true")
    parser.add_argument("--timeout", type=float, default=5.0, help="CA connection timeout")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    document = load(args.config)
    config = document.config
    if args.motor not in config.motors:
        print(f"no motor {args.motor!r} in {args.config}", file=sys.stderr)
        return 2
    names = {args.motor}
    if args.flat_frames and config.detector.flat_motor in config.motors:
        names.add(config.detector.flat_motor)
    motors = {name: EpicsMotor(name, config.motors[name].pv_root) for name in names}
    await asyncio.gather(*(m.connect(args.timeout) for m in motors.values()))
    controller = build_controller(config, motors,
                                  config_dir=args.config.resolve().parent,
                                  is_homed=lambda name: False)
    controller.watch_devices()
    # A device that does not answer makes the scan refused in words (a bench without a
    # box still runs Step and Cont), rather than a traceback here.
    camera, box = controller.camera, controller.box
    with contextlib.suppress(DeviceError):
        if isinstance(camera, CaCamera):
            await camera.connect(args.timeout)
        if isinstance(box, CaTriggerBox) and args.mode == "Fly":
            await box.connect(args.timeout)
    controller.update(
        mode=ScanMode[args.mode.upper()], motor=args.motor, start=args.start, end=args.end,
        num_points=args.points, frames_per_point=args.frames_per_point,
        exposure=args.exposure, period=args.period, settle_time=args.settle,
        require_homed=not args.no_require_homed, dark_frames=args.dark_frames,
        flat_frames=args.flat_frames,
    )
    try:
        result = await controller.run()
    except ScanRefused as refusal:
        print(json.dumps({"refused": str(refusal)}), flush=True)
        return 2
    finally:
        controller.close()
        for motor in motors.values():
            motor.close()
    record = dataclasses.asdict(result)
    record["state"] = result.state.label
    print(json.dumps(record), flush=True)
    return 0 if result.state == ScanState.DONE else 1


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = _parse(argv)
    try:
        return asyncio.run(_run(args))
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
