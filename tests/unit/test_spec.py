"""The spec's bindings name things that exist: a typo in a field name, a config key or a
command verb fails here, not when a client first writes the record."""

from __future__ import annotations

import dataclasses

import pytest

from benchioc import config as cfg
from benchioc.engines.homing import HomingState
from benchioc.engines.motormodel import MotorStatus
from benchioc.engines.sync import Preview, ScanSettings, ScanState, ScanUpdate
from benchioc.records.bench import Bench
from benchioc.records.motor import MotorBinding
from benchioc.records.spec import (
    HOMING_STATES,
    SCOPES,
    BenchConfig,
    BenchRecords,
    Command,
    DataConfig,
    Kind,
    MotorConfig,
    MotorField,
    MotorRecords,
    Published,
    ScanSetting,
    Scope,
    SyncRecords,
)
from benchioc.records.sync import SyncBinding

ALL = [pv for records in SCOPES.values() for pv in records.all()]


def fields_of(cls: type) -> set[str]:
    names = {field.name for field in dataclasses.fields(cls)}
    return names | {name for name, value in vars(cls).items() if isinstance(value, property)}


def test_names_are_the_attribute_names_and_scopes_their_class():
    assert MotorRecords.LoLim.name == "LoLim" and MotorRecords.LoLim.scope is Scope.MOTOR
    assert SyncRecords.Run.full_name("BENCH:") == "BENCH:Sync:Run"
    assert BenchRecords.AbortAll.full_name("BENCH:") == "BENCH:AbortAll"
    assert MotorRecords.HomeHi.full_name("BENCH:", "A") == "BENCH:A:HomeHi"
    with pytest.raises(KeyError, match="no motor record 'Nope'"):
        MotorRecords.named("Nope")


@pytest.mark.parametrize("pv", ALL, ids=lambda pv: f"{pv.scope.value}:{pv.name}")
def test_every_binding_names_something_that_exists(pv):
    binds = pv.binds
    assert binds is not None, "every record says what it binds to"
    if isinstance(binds, MotorConfig):
        assert binds.key in cfg.MotorConfig.model_fields
    elif isinstance(binds, BenchConfig):
        assert hasattr(cfg.BenchConfig.model_construct(), binds.key)
    elif isinstance(binds, DataConfig):
        assert binds.key in cfg.DataConfig.model_fields
    elif isinstance(binds, ScanSetting):
        assert binds.field in fields_of(ScanSettings)
    elif isinstance(binds, MotorField):
        assert binds.field in fields_of(MotorStatus)
    elif isinstance(binds, Command):
        binding = {Scope.MOTOR: MotorBinding, Scope.BENCH: Bench, Scope.SYNC: SyncBinding}
        assert callable(getattr(binding[pv.scope], binds.verb, None)), binds.verb
        assert pv.kind is Kind.ACTION
    elif isinstance(binds, Published) and pv.scope is Scope.SYNC:
        assert binds.field in fields_of(ScanUpdate) | fields_of(Preview)


def test_state_labels_follow_the_engines_enums():
    assert len(HOMING_STATES) == len(HomingState)
    assert HOMING_STATES[HomingState.NOT_HOMED] == "NotHomed"
    assert HOMING_STATES[HomingState.FAILED] == ("Failed", "MAJOR")
    assert SyncRecords.State.options[ScanState.ABORTED] == ("Aborted", "MINOR")


def test_writable_records_are_the_ones_that_bind_a_put():
    for pv in ALL:
        takes_puts = isinstance(pv.binds, MotorConfig | BenchConfig | DataConfig | ScanSetting
                                | Command)
        assert pv.writable == takes_puts, pv.name


def test_records_in_motor_units_are_positions_of_a_motor_scope_or_the_scan():
    """EGU and PREC follow the motor record only where a number in its units is shown."""
    marked = {pv.full_name("", "M") for pv in ALL if pv.motor_units}
    assert marked == {"M:Position", "M:LoLim", "M:Center", "M:HiLim", "Sync:Start",
                      "Sync:End", "Sync:Positions", "Sync:SetPositions"}
    for pv in ALL:
        if pv.motor_units:
            assert pv.kind in (Kind.AI, Kind.AO, Kind.WAVEFORM_IN) and pv.prec is not None
            assert pv.dtype.startswith("float")


def test_data_records_hold_text_a_plain_caput_can_write():
    for pv in ALL:
        if isinstance(pv.binds, DataConfig):
            assert pv.kind is Kind.STRING_OUT and pv.blocking  # completes once saved
