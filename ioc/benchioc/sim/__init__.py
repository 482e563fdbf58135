"""The simulated bench (caproto): genuine-looking motor records on loopback CA.

Run it with `bench-sim [--config FILE] [--port N] [--time-scale X]` or
`python -m benchioc.sim ...`. It prints one line, `bench-sim ready port=<N> motors=A,...`,
when clients can connect, logs to stderr and exits cleanly on SIGINT/SIGTERM.

Each motor of the config is a motor record (RTYP=motor) at its `pv_root`, simulated with
the genuine record's semantics: VAL/DVAL/RBV/DRBV/OFF/DIR/FOFF/SET, soft limits with LVIO
(DHLM=DLLM=0 disables them), hard limit switches at fixed physical positions (swapped by
DIR=Neg), JOGF/JOGR, HOMF/HOMR (motorSim's: at HVEL to the home mark at dial 0), STOP,
SPMG, CNEN, SYNC, trapezoidal profiles from VELO/ACCL (VMAX caps VELO), DMOV/MOVN/MSTA/MIP,
alarms, and put-callback completion when the record is done. Physics per motor comes from
the config's `sim.motors` (dial units); a motor without an entry gets switches 2 units
beyond its soft limits plus the tolerance. `sim.time_scale` (or --time-scale) speeds the
whole bench up: 10 means ten simulated seconds per real second.

The behaviour was measured against the genuine motor record with its motorSim driver
(tests/integration/test_motor_differential.py); docs/genuine-differences.md lists what
was found and the few differences that stay. Clients meet in particular:
- a limit-switch trip ends the move at once (DMOV=1, MOVN=0, VAL = the readback then)
  while the axis overshoots and settles past the switch ~80 ms (simulated) later: RBV
  changes after DMOV=1, and MSTA DONE is set last;
- JOGF/JOGR while already on that switch is ignored and reads back 0;
- a VAL beyond the soft limits sets LVIO=1, does not move and pulses DMOV 1->0->1;
- a VAL put while the record moves does not retarget (it moves on afterwards); a second
  put-callback waits for the first; SPMG=Pause keeps DMOV=0 until Go;
- the reply of a put-callback comes before the last monitors of its motion;
- CNEN starts at Disable and motion works regardless (`gain_support: true` in a motor's
  sim entry makes it a closed-loop axis that needs CNEN=Enable);
- SET=Set then a VAL put: FOFF=Variable changes OFF, FOFF=Frozen redefines the dial.

Fault knobs, per motor, under `<pv_root>:Sim:`:

- `StallAt` (ao, user units, NaN = off): motion stalls on reaching this position: RBV
  frozen, DMOV stays 0, MOVN=1, MSTA SLIP_STALL+MOVING, alarm MAJOR/STATE, until STOP.
  A later move in the same direction from there stalls again at once.
- `BrokenSwitch` (mbbo None/High/Low, user sense): that switch never asserts; the axis
  runs into its hard stop (1 unit past the switch) and stalls there as above.
- `AmpFault` (bo Off/On): MSTA PROBLEM, motion stops abruptly, moves are refused (DMOV
  pulses), alarm MAJOR/STATE.
- `CommError` (bo): MSTA COMM_ERR, readbacks (RBV, DRBV, switches, MSTA, DMOV, MOVN)
  freeze, moves are refused, alarm INVALID/COMM; clearing it catches the readbacks up.
- `IgnoreStop` (bo): the controller ignores STOP, SPMG Stop/Pause and a jog release.

Modules: `profile` (trapezoidal trajectories, exact crossing times), `motion` (MotorSim:
physics + record logic on a replaceable clock, no caproto), `motor` (the caproto PV group),
`caproto_fixes` (caproto 1.3.0 server defects worked around, put-callback awareness),
`server` (pvdb assembly and the command line). `BenchSim.motors` maps a motor name to its
MotorSim, whose `trajectory`/`position_at(t)`/`user_crossing_time(x)` give exact positions
and crossing times in simulated seconds (`clock()`; `clock.to_real(dt)` converts).
"""
