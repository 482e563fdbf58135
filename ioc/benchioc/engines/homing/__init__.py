"""Homing of the bench motors on their hard limit switches (DESIGN.md "Homing"), as
pure asyncio: settings and reports (settings), the procedure for one motor (procedure),
and the controllers the IOC and motion-box bind to (bench). Motors are reached only
through the HomingMotor protocol over the motor model (benchioc.engines.motormodel)."""

from .bench import BenchHoming, BenchUpdate, MotorHoming
from .procedure import home
from .settings import (
    HomeSwitchMotor,
    HomingBusy,
    HomingError,
    HomingMethod,
    HomingMotor,
    HomingSettings,
    HomingState,
    HomingUpdate,
)

__all__ = [
    "BenchHoming", "BenchUpdate", "HomeSwitchMotor", "HomingBusy", "HomingError",
    "HomingMethod", "HomingMotor",
    "HomingSettings", "HomingState", "HomingUpdate", "MotorHoming", "home",
]
