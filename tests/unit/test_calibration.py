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


def test_rest_positions_are_saved_at_most_once_a_second_and_on_the_way_out(
        tmp_path, monkeypatch) -> None:
    """A step scan brings a homed motor to rest at every point: each point must not cost
    the IOC's loop a file write (they are coalesced), and the last one is not lost."""
    import asyncio
    import json

    from benchioc.engines.homing.calibration import Calibration
    from benchioc.records import autosave

    writes: list[float] = []
    store = autosave.HomingStateStore(tmp_path)
    store.record("A", True, calibration=Calibration(0.0, 1, 0.001, 1.0))
    real_write = store._write
    monkeypatch.setattr(store, "_write", lambda: (writes.append(1), real_write()))

    def saved_dial() -> float:
        return json.loads(store.path.read_text())["A"]["calibration"]["dial"]

    async def scan_points() -> None:
        for dial in (2.0, 3.0, 4.0):
            store.note_rest("A", dial, 0.001)
        assert writes == [] and saved_dial() == 1.0  # nothing written yet
        await asyncio.sleep(autosave.REST_SAVE_DELAY_S + 0.1)
        assert len(writes) == 1 and saved_dial() == 4.0  # one write for three points
        store.note_rest("A", 5.0, 0.001)
        store.flush()  # the IOC stopping
        assert len(writes) == 2 and saved_dial() == 5.0

    monkeypatch.setattr(autosave, "REST_SAVE_DELAY_S", 0.05)
    asyncio.run(scan_points())
