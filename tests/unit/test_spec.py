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
        takes_puts = isinstance(pv.binds, MotorConfig | BenchConfig | ScanSetting | Command)
        assert pv.writable == takes_puts, pv.name
