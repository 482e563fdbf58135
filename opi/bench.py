"""PyDM display for the motion test bench: `pydm -m P=BENCH: opi/bench.py` or `bench-gui`.

The layout is bench.ui; this class binds its widgets to the records of the chosen motor
(or of the whole bench for "All"), keeps a live row per configured motor, and adds or
removes motors through `motion-box` on the config file the IOC serves. The decisions
(which record each widget follows, the motion-box call) live in benchioc.tools.gui; every
PV name comes from the spec (benchioc.records.spec).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from pydm import Display
from pydm.widgets import PyDMChannel, PyDMLabel
from pydm.widgets.display_format import DisplayFormat
from qtpy.QtCore import QProcess, Qt
from qtpy.QtWidgets import QLabel

from benchioc.records.spec import BenchRecords
from benchioc.tools import gui

log = logging.getLogger(__name__)


class BenchScreen(Display):
    def __init__(self, parent=None, args=None, macros=None):
        super().__init__(parent=parent, args=args, macros=macros,
                         ui_filename=str(Path(__file__).with_name("bench.ui")))
        self.prefix = self.macros().get("P", gui.DEFAULT_PREFIX)
        self.motors: list[str] = []
        self._wanted = self.macros().get("M", "")
        self._table_widgets: list[QLabel] = []
        self._process: QProcess | None = None
        self.setWindowTitle(f"Motion test bench {self.prefix}")
        self.ui.titleLabel.setText(f"Motion test bench — IOC prefix {self.prefix}")
        for name in gui.text_widgets():
            getattr(self.ui, name).displayFormat = DisplayFormat.String
        for widget, pv in gui.BENCH_BINDINGS.items():
            getattr(self.ui, widget).channel = gui.channel(pv, self.prefix)
        self.ui.motorCombo.currentTextChanged.connect(self.choose)
        self.ui.addButton.clicked.connect(self.add_motor)
        self.ui.removeButton.clicked.connect(self.remove_motor)
        # The motor set comes from the IOC, so an add/remove shows up by itself.
        self._motors_channel = PyDMChannel(
            address=gui.channel(BenchRecords.Motors, self.prefix), value_slot=self.set_motors)
        self._motors_channel.connect()

    def set_motors(self, value) -> None:
        motors = gui.parse_motors(value)
        if motors == self.motors:
            return
        self.motors = motors
        current = self.ui.motorCombo.currentText() or self._wanted
        combo = self.ui.motorCombo
        combo.blockSignals(True)
        combo.clear()
        combo.addItems([*motors, gui.ALL])
        combo.blockSignals(False)
        pick = current if current in (*motors, gui.ALL) else (motors[0] if motors else gui.ALL)
        combo.setCurrentText(pick)
        self.choose(pick)
        self._fill_table()

    def choose(self, choice: str) -> None:
        """Bind the motor panel to one motor's records, or the homing buttons to all.

        A widget given a new channel is disabled until PyDM has connected it (and, for
        the edits and buttons, found write access): PyDM enables it then. Enabled at once,
        a button would look ready while a press could not yet write anything.
        """
        if not choice:
            return
        for widget, channel in gui.channels_for(self.prefix, choice).items():
            target = getattr(self.ui, widget)
            if (target.channel or "") == channel:
                continue  # the same record: PyDM keeps its connection and state
            target.setEnabled(False)
            target.channel = channel
        self.ui.motorBox.setTitle("All motors" if choice == gui.ALL else f"Motor {choice}")
        self.ui.removeButton.setEnabled(choice != gui.ALL)

    def _fill_table(self) -> None:
        grid = self.ui.motorsGrid
        for widget in self._table_widgets:
            grid.removeWidget(widget)
            widget.deleteLater()
        self._table_widgets = []
        titles = ("Motor", *(pv.name for pv in gui.TABLE_COLUMNS))
        for column, title in enumerate(titles):
            self._add_cell(QLabel(f"<b>{title}</b>"), 0, column)
        for row, motor in enumerate(self.motors, start=1):
            self._add_cell(QLabel(motor), row, 0)
            for column, pv in enumerate(gui.TABLE_COLUMNS, start=1):
                label = PyDMLabel(init_channel=gui.channel(pv, self.prefix, motor))
                label.setObjectName(gui.table_cell_name(motor, pv))
                label.alarmSensitiveBorder = True
                if pv.kind in gui.TEXT_KINDS:
                    label.displayFormat = DisplayFormat.String
                self._add_cell(label, row, column)

    def _add_cell(self, widget: QLabel, row: int, column: int) -> None:
        widget.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.ui.motorsGrid.addWidget(widget, row, column)
        self._table_widgets.append(widget)

    def add_motor(self) -> None:
        settings = [edit.text().strip() for edit in (
            self.ui.newPvRootEdit, self.ui.newLoLimEdit, self.ui.newCenterEdit,
            self.ui.newHiLimEdit)]
        self._run_motion_box("add", self.ui.newNameEdit.text().strip(), settings)

    def remove_motor(self) -> None:
        self._run_motion_box("remove", self.ui.motorCombo.currentText())

    def _run_motion_box(self, verb: str, name: str, settings=()) -> None:
        try:
            args = gui.motion_box_args(verb, self.ui.configFileLabel.text().strip(), name,
                                       settings)
        except ValueError as error:
            self.ui.editResultLabel.setText(str(error))
            return
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.MergedChannels)
        process.finished.connect(lambda *_: self._edit_done(process))
        self._process = process
        self.ui.editResultLabel.setText(f"motion-box {verb} {name} ...")
        process.start(sys.executable, args)

    def _edit_done(self, process: QProcess) -> None:
        output = bytes(process.readAll()).decode(errors="replace").strip()
        self.ui.editResultLabel.setText(output or f"motion-box exited {process.exitCode()}")


intelclass = BenchScreen
