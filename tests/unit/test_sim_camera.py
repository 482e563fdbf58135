"""The simulated camera's physics, on an explicit clock."""

from __future__ import annotations

import pytest

from benchioc.sim.camera import CameraModel, DetectorState, ImageMode, TriggerMode


def camera(**settings) -> CameraModel:
    model = CameraModel(readout_time=0.002)
    model.acquire_time = 0.01
    model.acquire_period = 0.05
    for key, value in settings.items():
        setattr(model, key, value)
    return model


def test_internal_multiple_takes_num_images_at_the_period() -> None:
    model = camera(image_mode=ImageMode.MULTIPLE, num_images=3)
    model.start(10.0)
    assert model.state == DetectorState.WAITING
    frames = model.advance(11.0)
    assert [f.number for f in frames] == [1, 2, 3]
    assert [f.timestamp for f in frames] == pytest.approx([10.0, 10.05, 10.10])
    assert not model.acquiring
    assert model.num_images_counter == 3
    assert model.state == DetectorState.IDLE


def test_frame_is_delivered_at_the_end_of_the_exposure() -> None:
    # as simDetector: the callback fires when the exposure ends; the readout does not
    # delay it
    model = camera(image_mode=ImageMode.SINGLE)
    model.start(0.0)
    assert model.advance(0.0095) == []
    assert model.state == DetectorState.ACQUIRE
    assert model.next_event_time() == pytest.approx(0.01)
    frames = model.advance(0.01)
    assert [(f.number, f.timestamp) for f in frames] == [(1, 0.0)]
    assert frames[0].delivered == pytest.approx(0.01)
    assert not model.acquiring


def test_period_shorter_than_exposure_plus_readout_is_stretched() -> None:
    model = camera(acquire_period=0.001, num_images=3)
    model.start(0.0)
    frames = model.advance(1.0)
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.012, 0.024])
    # each delivered when its exposure ends; the readout only spaces the exposures
    assert [f.delivered for f in frames] == pytest.approx([0.01, 0.022, 0.034])


def test_readout_is_dead_time_between_frames_not_a_delivery_delay() -> None:
    model = camera(num_images=3)
    model.start(0.0)
    model.advance(0.011)
    assert model.array_counter == 1  # delivered at 0.01, during the readout
    assert model.state == DetectorState.WAITING
    assert model.next_event_time() == pytest.approx(0.05)


def test_continuous_runs_until_stopped_and_stop_loses_the_exposure() -> None:
    model = camera(image_mode=ImageMode.CONTINUOUS)
    model.start(0.0)
    assert len(model.advance(0.5)) == 10  # exposures at 0, 0.05, ... 0.45 done by 0.5
    model.stop(0.505)
    assert model.advance(5.0) == []
    assert model.array_counter == 10
    assert not model.acquiring


def test_external_trigger_takes_one_frame_per_pulse_stamped_with_the_pulse() -> None:
    model = camera(trigger_mode=TriggerMode.EXTERNAL, num_images=2)
    model.start(0.0)
    assert model.advance(1.0) == []  # waits for triggers
    assert model.trigger(1.2345)
    assert model.trigger(1.5)
    frames = model.advance(2.0)
    assert [(f.number, f.timestamp) for f in frames] == [(1, 1.2345), (2, 1.5)]
    assert not model.acquiring


def test_trigger_while_busy_or_idle_is_ignored() -> None:
    model = camera(trigger_mode=TriggerMode.EXTERNAL, num_images=5)
    assert not model.trigger(0.0)  # not acquiring
    model.start(0.0)
    assert model.trigger(1.0)
    assert not model.trigger(1.005)  # during the exposure
    frames = model.advance(1.0105)
    assert [(f.number, f.delivered) for f in frames] == [(1, pytest.approx(1.01))]
    assert not model.trigger(1.011)  # delivered, but still in its 2 ms readout
    assert model.ignored_triggers == 3
    assert model.trigger(1.012)  # exposure + readout after the last one: taken
    assert [f.timestamp for f in model.advance(2.0)] == [1.012]


def test_internal_trigger_mode_ignores_external_pulses() -> None:
    model = camera(num_images=1)
    model.start(0.0)
    assert not model.trigger(0.001)


def test_dropped_frames_count_as_taken_but_are_not_delivered() -> None:
    model = camera(num_images=4, drop_frames=2)
    model.start(0.0)
    frames = model.advance(1.0)
    assert [f.dropped for f in frames] == [True, True, False, False]
    assert model.num_images_counter == 4
    assert model.array_counter == 2
    assert model.drop_frames == 0


def test_counter_carries_on_across_acquisitions() -> None:
    model = camera(num_images=2)
    model.start(0.0)
    model.advance(1.0)
    model.start(2.0)
    assert [f.number for f in model.advance(3.0)] == [3, 4]
    assert model.num_images_counter == 2
