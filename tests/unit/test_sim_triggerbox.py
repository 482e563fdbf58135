"""The simulated trigger box's position compare, on an explicit clock."""

from __future__ import annotations

import numpy as np
import pytest

from benchioc.sim.triggerbox import Direction, PcompModel


def box(**settings) -> PcompModel:
    model = PcompModel()
    for key, value in settings.items():
        setattr(model, key, value)
    return model


def ramp(x0: float, speed: float, t0: float = 0.0):
    return lambda t: x0 + speed * (t - t0)


def run(model: PcompModel, position_at, until: float, sample: float) -> list:
    pulses = []
    model.enable(0.0, position_at(0.0))
    for now in np.arange(sample, until + sample, sample):
        pulses += model.advance(float(now), position_at)
    return pulses


def test_pulses_fire_at_the_exact_crossing_times_whatever_the_sampling() -> None:
    model = box(start=0.0, step=0.5, pulses=3)
    # x = -1 + 10 t crosses 0, 0.5, 1.0 at 0.1, 0.15, 0.2 s; sampled every 13 ms.
    pulses = run(model, ramp(-1.0, 10.0), until=0.5, sample=0.013)
    assert [p.timestamp for p in pulses] == pytest.approx([0.1, 0.15, 0.2], abs=1e-9)
    assert [p.position for p in pulses] == pytest.approx([0.0, 0.5, 1.0], abs=1e-8)
    assert model.produced == 3
    assert not model.active


def test_negative_direction_counts_down_from_start() -> None:
    model = box(start=2.0, step=0.5, pulses=3, direction=Direction.NEGATIVE)
    pulses = run(model, ramp(3.0, -5.0), until=1.0, sample=0.01)
    assert [p.position for p in pulses] == pytest.approx([2.0, 1.5, 1.0], abs=1e-8)
    assert [p.timestamp for p in pulses] == pytest.approx([0.2, 0.3, 0.4], abs=1e-9)


def test_motion_in_the_wrong_direction_fires_nothing() -> None:
    model = box(start=0.0, step=0.5, pulses=3)
    assert run(model, ramp(2.0, -10.0), until=0.5, sample=0.01) == []
    assert model.active


def test_armed_past_start_waits_for_the_pre_start_position() -> None:
    model = box(start=0.0, step=1.0, pulses=2, pre_start=0.5)
    # Armed at +1 moving down to -1 then back up: fires only on the way up.
    def there_and_back(t: float) -> float:
        return 1.0 - 10 * t if t < 0.2 else -1.0 + 10 * (t - 0.2)

    pulses = run(model, there_and_back, until=0.5, sample=0.007)
    assert [p.timestamp for p in pulses] == pytest.approx([0.3, 0.4], abs=1e-9)


def test_several_crossings_in_one_sample_each_get_their_time() -> None:
    model = box(start=0.0, step=0.1, pulses=5)
    pulses = run(model, ramp(-0.05, 1.0), until=1.0, sample=1.0)
    assert [p.timestamp for p in pulses] == pytest.approx([0.05, 0.15, 0.25, 0.35, 0.45],
                                                          abs=1e-9)


def test_dropped_pulses_are_produced_but_not_delivered() -> None:
    model = box(start=0.0, step=0.5, pulses=4, drop_pulses=1)
    pulses = run(model, ramp(-1.0, 10.0), until=1.0, sample=0.01)
    assert [p.delivered for p in pulses] == [False, True, True, True]
    assert model.produced == 4
    assert model.dropped == 1
    assert len(model.captured) == 4


def test_disable_stops_firing_and_enable_restarts_the_count() -> None:
    model = box(start=0.0, step=0.5, pulses=4)
    position_at = ramp(-1.0, 10.0)
    model.enable(0.0, position_at(0.0))
    model.advance(0.12, position_at)
    assert model.produced == 1
    model.disable()
    assert model.advance(0.5, position_at) == []
    model.enable(0.5, position_at(0.5))
    assert model.produced == 0 and model.captured == []
