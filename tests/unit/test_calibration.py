"""When a saved homing calibration still holds, and the reason in words when it does not."""

from __future__ import annotations

import dataclasses

import pytest

from benchioc.engines.homing.calibration import Calibration, doubt
from benchioc.engines.motormodel import MotorStatus

HOMED = MotorStatus(connected=True, off=-1.5, dir=0, mres=0.001, drbv=2.0, egu="mm", prec=3)
SAVED = Calibration.of(HOMED)


def now(**changes) -> MotorStatus:
    return dataclasses.replace(HOMED, **changes)


def test_the_record_as_the_homing_left_it_holds() -> None:
    assert doubt(SAVED, HOMED) is None
    assert doubt(SAVED, now(drbv=2.005)) is None  # within ten steps: encoder jitter


@pytest.mark.parametrize(("changes", "words"), [
    ({"dir": 1}, "the direction changed since it was homed (DIR Pos -> Neg)"),
    ({"mres": 0.002}, "the resolution changed since it was homed (MRES 0.001 -> 0.002)"),
    ({"off": 0.0}, "the offset changed since it was homed (OFF -1.500 mm -> 0.000 mm)"),
    ({"drbv": 0.0}, "the controller position changed while unobserved (dial 2.000 mm when"
                    " last at rest, now 0.000 mm)"),
])
def test_each_change_is_named(changes: dict, words: str) -> None:
    reason = doubt(SAVED, now(**changes))
    assert reason is not None and reason.startswith(words), reason


def test_no_saved_calibration_cannot_be_confirmed() -> None:
    assert "no calibration was saved" in (doubt(None, HOMED) or "")
    assert Calibration.from_json({"off": "x"}) is None
    assert Calibration.from_json(SAVED.to_json()) == SAVED
