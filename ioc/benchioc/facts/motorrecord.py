"""Facts about the EPICS motor record shared by its client (motor.py, motormodel.py) and its
simulation (sim/): the MSTA status bits and the SPMG modes."""

from __future__ import annotations

import enum


class Msta(enum.IntFlag):
    """Motor status bits (MSTA) of the motor record."""

    DIRECTION = 1 << 0
    DONE = 1 << 1
    PLUS_LS = 1 << 2
    HOMELS = 1 << 3
    POSITION = 1 << 5
    SLIP_STALL = 1 << 6
    HOME = 1 << 7
    PRESENT = 1 << 8
    PROBLEM = 1 << 9
    MOVING = 1 << 10
    GAIN_SUPPORT = 1 << 11
    COMM_ERR = 1 << 12
    MINUS_LS = 1 << 13
    HOMED = 1 << 14


class Spmg(enum.IntEnum):
    """The motor record's Stop/Pause/Move/Go field."""

    STOP = 0
    PAUSE = 1
    MOVE = 2
    GO = 3
