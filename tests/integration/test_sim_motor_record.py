"""The simulated bench as real CA clients see it (subprocess sim, caget/caput/camonitor)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from simharness import (
    BIN,
    Monitor,
    SimProcess,
    caget,
    caput,
    run_ca,
    start_sim,
    transitions,
)

pytestmark = pytest.mark.integration

TIME_SCALE = 10.0
DONE = 1 << 1


@pytest.fixture(scope="module")
def sim() -> SimProcess:
    with start_sim(time_scale=TIME_SCALE) as process:
        yield process
        assert process.alive(), process.stderr_text()[-2000:]
    assert process.process.returncode == 0, process.stderr_text()[-2000:]


def test_motor_records_answer_as_motor_records(sim: SimProcess):
    assert sim.motors == ["A", "B", "C", "D", "E"]
    assert caget("SIM:A.RTYP", sim.env) == "motor"
    assert caget("SIM:D.DIR", sim.env) == "Neg"
    assert caget("SIM:C.EGU", sim.env) == "mm"
    assert caget("SIM:E.PREC", sim.env) == "4"
    assert caget("SIM:A:Sim:StallAt", sim.env) == "nan"


def test_refused_move_pulses_dmov_and_sets_lvio(sim: SimProcess):
    with Monitor(["SIM:B.DMOV"], sim.env) as monitor:
        monitor.wait_value("SIM:B.DMOV", "1")
        caput("SIM:B.VAL", 25, sim.env, callback=True)  # HLM is 20
        monitor.wait_value("SIM:B.DMOV", "1", count=2)
        assert monitor.values("SIM:B.DMOV") == ["1", "0", "1"]
    assert caget("SIM:B.LVIO", sim.env) == "1"
    assert float(caget("SIM:B.VAL", sim.env)) == -3.0
    assert float(caget("SIM:B.RBV", sim.env)) == -3.0


def test_put_callback_returns_when_the_move_has_ended(sim: SimProcess):
    with Monitor(["SIM:A.DMOV"], sim.env) as monitor:
        monitor.wait_value("SIM:A.DMOV", "1")
        caput("SIM:A.VAL", 3, sim.env, callback=True)
        # The reply came after the motion: DMOV already went 0 then 1, RBV is there.
        assert float(caget("SIM:A.RBV", sim.env)) == 3.0
        monitor.wait_value("SIM:A.DMOV", "1", count=2, timeout=2)
        assert monitor.values("SIM:A.DMOV") == ["1", "0", "1"]


def test_stop_is_served_while_a_put_callback_waits(sim: SimProcess):
    caput("SIM:C.VELO", 1, sim.env)  # 70 units at 1 unit/s: 7 s real at this time scale
    try:
        with Monitor(["SIM:C.DMOV"], sim.env) as monitor:
            monitor.wait_value("SIM:C.DMOV", "1")
            mover = subprocess.Popen(
                [str(BIN / "caput"), "-c", "-w", "30",
                 "SIM:C.VAL", "90"], env=sim.env, stdout=subprocess.DEVNULL)
            monitor.wait_value("SIM:C.DMOV", "0")
            started = time.monotonic()
            caput("SIM:C.STOP", 1, sim.env)
            assert mover.wait(5) == 0
            assert time.monotonic() - started < 2.0
        rbv = float(caget("SIM:C.RBV", sim.env))
        assert 20.0 < rbv < 40.0
        assert float(caget("SIM:C.VAL", sim.env)) == pytest.approx(rbv, abs=0.002)
        assert caget("SIM:C.STOP", sim.env) == "0"
    finally:
        caput("SIM:C.VELO", 20, sim.env)


def test_jog_to_the_switch_trips_then_settles_with_done_last(sim: SimProcess):
    caput("SIM:A.DHLM", 0, sim.env)
    caput("SIM:A.DLLM", 0, sim.env)
    pvs = ["SIM:A.DMOV", "SIM:A.RBV", "SIM:A.MSTA", "SIM:A.HLS"]
    with Monitor(pvs, sim.env) as monitor:
        monitor.wait_for(lambda ups: {u.pv for u in ups} == set(pvs), what="first updates")
        caput("SIM:A.JOGF", 1, sim.env, callback=True)
        assert caget("SIM:A.HLS", sim.env) == "1"
        assert caget("SIM:A.JOGF", sim.env) == "0"
        monitor.wait_for(lambda ups: int(float(ups[-1].value)) & DONE and
                         ups[-1].pv == "SIM:A.MSTA", what="MSTA DONE")
        updates = list(monitor.updates)
    order = [(u.pv, u.value) for u in updates]
    dmov_done = max(i for i, (pv, v) in enumerate(order) if pv == "SIM:A.DMOV" and v == "1")
    last_rbv = max(i for i, (pv, _) in enumerate(order) if pv == "SIM:A.RBV")
    done_bit = next(i for i, (pv, v) in enumerate(order)
                    if i > dmov_done and pv == "SIM:A.MSTA" and int(float(v)) & DONE)
    assert dmov_done < last_rbv < done_bit
    val, rbv = float(caget("SIM:A.VAL", sim.env)), float(caget("SIM:A.RBV", sim.env))
    assert val == pytest.approx(44.1, abs=0.01)  # the trip position
    assert rbv > val + 0.1  # settled past the switch: VAL is stale by the overshoot
    caput("SIM:A.JOGF", 1, sim.env, callback=True)  # already on the switch: ignored
    assert caget("SIM:A.JOGF", sim.env) == "0"
    assert float(caget("SIM:A.RBV", sim.env)) == rbv
    caput("SIM:A.VAL", 0, sim.env, callback=True)
    caput("SIM:A.HLM", 40, sim.env)
    caput("SIM:A.LLM", -40, sim.env)


def test_pyepics_motor_moves_and_reads_back(sim: SimProcess):
    code = (
        "import epics\n"
        "m = epics.Motor('SIM:D')\n"
        "print(m.move(1.0, wait=True), epics.caget('SIM:D.RBV', use_monitor=False))\n"
        "print(m.move(-3.5, wait=True), epics.caget('SIM:D.RBV', use_monitor=False), m.DIR,"
        "      m.get_position(readback=True))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=sim.env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n")[:2]
    assert first.split() == ["0", "1.0"]
    assert second.split()[:3] == ["0", "-3.5", "1"]
    # epics.Motor's own RBV cache may be one readback behind when move() returns.
    assert float(second.split()[3]) == pytest.approx(-3.5, abs=0.05)


def test_ophyd_epics_motor_moves_the_simulated_motor(sim: SimProcess):
    # ophyd's EpicsMotor (what bluesky plans use) connects to every field it declares
    code = (
        "from ophyd import EpicsMotor\n"
        "m = EpicsMotor('SIM:B', name='b')\n"
        "m.wait_for_connection(timeout=10)\n"
        "m.set(2.5).wait(timeout=30)\n"
        "print(m.user_readback.get(use_monitor=False), m.motor_done_move.get(),"
        " m.egu, m.low_limit_switch.get(), m.high_limit_switch.get())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=sim.env, capture_output=True,
                            text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    readback, done, egu, lls, hls = result.stdout.split()
    assert (float(readback), done, egu, lls, hls) == (2.5, "1", "mm", "0", "0")


def test_dir_neg_axis_trips_its_raw_low_switch_as_hls(sim: SimProcess):
    caput("SIM:D.DHLM", 0, sim.env)
    caput("SIM:D.DLLM", 0, sim.env)
    caput("SIM:D.JVEL", 5, sim.env)
    caput("SIM:D.JOGF", 1, sim.env, callback=True)
    assert (caget("SIM:D.HLS", sim.env), caget("SIM:D.LLS", sim.env)) == ("1", "0")
    assert caget("SIM:D.RLLS", sim.env) == "1"
    assert float(caget("SIM:D.VAL", sim.env)) == pytest.approx(12.0, abs=0.01)


def test_amp_fault_knob_sets_problem_and_major_alarm(sim: SimProcess):
    caput("SIM:E:Sim:AmpFault", 1, sim.env)
    try:
        assert int(caget("SIM:E.MSTA", sim.env)) & (1 << 9)
        assert caget("SIM:E.SEVR", sim.env) == "MAJOR"
        with Monitor(["SIM:E.DMOV"], sim.env) as monitor:
            monitor.wait_value("SIM:E.DMOV", "1")
            caput("SIM:E.VAL", 2, sim.env, callback=True)
            monitor.wait_value("SIM:E.DMOV", "1", count=2)
            assert transitions(monitor.values("SIM:E.DMOV")) == 2
        assert float(caget("SIM:E.RBV", sim.env)) == 0.5
    finally:
        caput("SIM:E:Sim:AmpFault", 0, sim.env)
    assert caget("SIM:E.SEVR", sim.env) == "NO_ALARM"


def test_sigterm_stops_the_sim_cleanly():
    with start_sim(time_scale=TIME_SCALE) as other:
        assert other.stop() == 0


# --- what the genuine record does, held without the genuine IOC (the differential test,
# test_motor_differential.py, compares it with the genuine one where that is built) ------
def test_fields_a_client_reads_start_as_on_the_genuine_record(sim: SimProcess):
    assert caget("SIM:B.CNEN", sim.env) == "Disable"  # motion works regardless
    assert caget("SIM:B.HHSV", sim.env) == "NO_ALARM"
    assert caget("SIM:B.TDIR", sim.env) == "0" and caget("SIM:B.ATHM", sim.env) == "0"
    info = run_ca("cainfo", "SIM:B.MSTA", env=sim.env).stdout
    assert "DBF_DOUBLE" in info  # DBF_ULONG travels as DOUBLE
    assert "DBF_LONG" in run_ca("cainfo", "SIM:B.MIP", env=sim.env).stdout


def test_a_second_put_callback_waits_for_the_first_move(sim: SimProcess):
    with Monitor(["SIM:A.VAL", "SIM:A.DMOV"], sim.env) as monitor:
        monitor.wait_value("SIM:A.DMOV", "1")
        first = subprocess.Popen([str(BIN / "caput"), "-c", "-w", "30", "SIM:A.VAL", "4"],
                                 env=sim.env, stdout=subprocess.DEVNULL)
        monitor.wait_value("SIM:A.DMOV", "0")
        caput("SIM:A.VAL", 2, sim.env, callback=True)  # returns after both moves
        assert first.wait(5) == 0
        vals = [float(v) for v in monitor.values("SIM:A.VAL")]
        dmov = monitor.values("SIM:A.DMOV")
    assert vals[-2:] == [4.0, 2.0]  # VAL=2 was applied only after the move to 4
    assert dmov.count("1") >= 2  # the first move ended (DMOV=1) before the second began
    assert float(caget("SIM:A.RBV", sim.env)) == 2.0


def test_a_put_callback_to_a_limit_completes_when_the_move_ends(sim: SimProcess):
    with Monitor(["SIM:B.DMOV"], sim.env) as monitor:
        monitor.wait_value("SIM:B.DMOV", "1")
        caput("SIM:B.VAL", -15, sim.env)  # a plain put: no put-callback owns the record
        monitor.wait_value("SIM:B.DMOV", "0")
        caput("SIM:B.DHLM", 19, sim.env, callback=True)  # DHLM processes the record
        assert caget("SIM:B.DMOV", sim.env) == "1"
        assert float(caget("SIM:B.RBV", sim.env)) == -15.0
    caput("SIM:B.DHLM", 20, sim.env)
    caput("SIM:B.VAL", -3, sim.env, callback=True)


def test_spmg_pause_holds_the_put_callback_until_go(sim: SimProcess):
    caput("SIM:C.VELO", 2, sim.env)  # a move of seconds (real) at this time scale
    mover = subprocess.Popen([str(BIN / "caput"), "-c", "-w", "30", "SIM:C.VAL", "60"],
                             env=sim.env, stdout=subprocess.DEVNULL)
    try:
        with Monitor(["SIM:C.DMOV", "SIM:C.MIP"], sim.env) as monitor:
            monitor.wait_value("SIM:C.DMOV", "0")
            caput("SIM:C.SPMG", "Pause", sim.env)
            monitor.wait_value("SIM:C.MIP", "64")  # stopped, the move owed (RETRY)
            assert mover.poll() is None and caget("SIM:C.DMOV", sim.env) == "0"
            caput("SIM:C.SPMG", "Go", sim.env)
            assert mover.wait(20) == 0
        assert float(caget("SIM:C.RBV", sim.env)) == 60.0
    finally:
        caput("SIM:C.SPMG", "Go", sim.env)
        caput("SIM:C.VELO", 20, sim.env)
        mover.kill()
