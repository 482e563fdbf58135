"""Generate the Phoebus operator screens (opi/*.bob) from the PV spec (records/spec.py).

The screens are pvi Devices built from the same `Pv` entries that build the records, laid
out by pvi's DLS formatter. A few things pvi's layout cannot say are added to its output
with lxml, still from the spec: screen-wide default macros, a colour rule on the homing
State, and the sync plot of measured against set positions. Nothing here is hand-written
XML, and the output is deterministic, so a test can compare it with the checked-in files.
Every PV name on the screens comes from a spec entry (`pv.full_name` with the macros), so a
record renamed in the spec is renamed on the screens at the next generation.

Macros: P (IOC prefix), M (motor name), ROOT (the motor record's PV root, used for the
motor record's own fields). bench.bob passes all three when it opens motor.bob.

Regenerate with `python -m benchioc.tools.screens` (writes opi/ from configs/bench.yaml).
"""

from __future__ import annotations

import argparse
import logging
import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from lxml import etree
from pvi._format.dls import DLSFormatter
from pvi.device import (
    LED,
    ArrayTrace,
    ComboBox,
    ComponentUnion,
    Device,
    DeviceRef,
    Grid,
    Group,
    ProgressBar,
    Row,
    SignalR,
    SignalRW,
    SignalW,
    SignalX,
    TextFormat,
    TextRead,
    TextWrite,
)

from .. import config as cfg
from ..records.spec import (
    MOTOR_PVS,
    SYNC_PVS,
    BenchRecords,
    Kind,
    MotorRecords,
    Pv,
    Scope,
    SyncRecords,
    scope_prefix,
)

log = logging.getLogger(__name__)

SCREENS = ("bench.bob", "motor.bob", "sync.bob")
DEFAULT_PREFIX = "BENCH:"
P = "$(P)"
M = "$(M)"
ROOT = "$(ROOT)"

# The motor record fields an operator checks when homing misbehaves.
MOTOR_RECORD_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (field, label, widget) — widget "led" for switches/flags, else text
    ("RBV", "Readback (RBV)", "text"),
    ("VAL", "Setpoint (VAL)", "text"),
    ("HLM", "High soft limit (HLM)", "text"),
    ("LLM", "Low soft limit (LLM)", "text"),
    ("DMOV", "Done moving (DMOV)", "led"),
    ("HLS", "High limit switch (HLS)", "led"),
    ("LLS", "Low limit switch (LLS)", "led"),
    ("MSTA", "Status bits (MSTA)", "hex"),
)

# Background colours of the State text by state label: busy states amber, success green,
# Aborted orange, Failed red; NotHomed and Idle keep the widget's own background.
BUSY, DONE, ABORTED, FAILED = (255, 214, 102), (134, 239, 172), (253, 186, 116), (252, 165, 165)
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "Seeking": BUSY, "Calibrating": BUSY, "Centering": BUSY, "Homed": DONE,
    "Preparing": BUSY, "Running": BUSY, "Finishing": BUSY, "Done": DONE,
    "Aborted": ABORTED, "Failed": FAILED,
}

# Records no screen shows: the heartbeat is for monitoring tools, and the per-frame times
# and camera frame numbers are for data files and scripts (the plot shows positions).
NOT_ON_SCREENS: frozenset[Pv] = frozenset({BenchRecords.Heartbeat, SyncRecords.Timestamps,
                                           SyncRecords.FrameNumbers})

# The columns of one motor row on bench.bob, in order, with their column headers.
BENCH_ROW: tuple[tuple[Pv, str], ...] = (
    (MotorRecords.State, "State"),
    (MotorRecords.Position, "Position"),
    (MotorRecords.HighLimitSwitch, "HLS"),
    (MotorRecords.LowLimitSwitch, "LLS"),
    (MotorRecords.Homed, "Homed"),
    (MotorRecords.HomeHi, "Home hi"),
    (MotorRecords.HomeLo, "Home lo"),
    (MotorRecords.Abort, "Abort"),
    (MotorRecords.Message, "Message"),
)
# Below the rows on bench.bob: the bench-wide buttons, a summary row (headed by the record
# names), and the bench's long strings, each on a line of its own.
BENCH_BUTTONS = (BenchRecords.HomeAllHi, BenchRecords.HomeAllLo, BenchRecords.AbortAll)
BENCH_SUMMARY = (BenchRecords.AllHomed, BenchRecords.Busy, BenchRecords.Tolerance)
BENCH_STRINGS = (BenchRecords.Message, BenchRecords.Motors, BenchRecords.ConfigFile)
# Long strings on bench.bob get this much more than one column's width.
BENCH_MESSAGE_EXTRA = 320
# Button texts where the record's name would read badly.
BUTTON_LABELS: dict[Pv, str] = {
    MotorRecords.HomeHi: "Home hi", MotorRecords.HomeLo: "Home lo",
    BenchRecords.HomeAllHi: "Home all hi", BenchRecords.HomeAllLo: "Home all lo",
    BenchRecords.AbortAll: "Abort all",
}
# The sync plot's traces, each against the set positions: (y record, colour, line, point).
# Phoebus enums: trace_type 0 none, 1 line; point_type 0 none, 2 circles.
SYNC_TRACES: tuple[tuple[Pv, tuple[int, int, int], str, str], ...] = (
    (SyncRecords.SetPositions, (37, 99, 235), "1", "0"),
    (SyncRecords.Positions, (220, 38, 38), "0", "2"),
)
SYNC_PLOT_X = SyncRecords.SetPositions


def _option_label(option: str | tuple[str, str]) -> str:
    return option if isinstance(option, str) else option[0]


def widget_name(pv: Pv, tag: str = "") -> str:
    """A PascalCase component name, unique on a screen when a tag (motor) is given."""
    return f"{tag}{pv.name}"


def component(pv: Pv, pv_name: str, tag: str = "", label: str | None = "") -> ComponentUnion:
    """The pvi component that shows (and for out records, edits) one record.

    The label is the spec's description unless given; None lets pvi derive it from the
    name ("ConfigFile" -> "Config File").
    """
    name = widget_name(pv, tag)
    label = pv.desc if label == "" else label
    kind = pv.kind
    if kind is Kind.ACTION:
        return SignalX(name=name, label=_button_label(pv), description=pv.desc,
                       write_pv=pv_name, value="1")
    if kind is Kind.MBB_OUT:
        return SignalRW(name=name, label=label, write_pv=pv_name,
                        write_widget=ComboBox(choices=[_option_label(o) for o in pv.options]))
    if kind is Kind.BO:
        return SignalRW(name=name, label=label, write_pv=pv_name,
                        write_widget=ComboBox(choices=list(pv.labels or ("No", "Yes"))))
    if kind.writable:
        string = kind in (Kind.STRING_OUT, Kind.LONG_STRING_OUT)
        return SignalW(name=name, label=label, write_pv=pv_name,
                       write_widget=TextWrite(format=TextFormat.string if string else None))
    return SignalR(name=name, label=label, read_pv=pv_name, read_widget=_read_widget(pv))


def _button_label(pv: Pv) -> str:
    return BUTTON_LABELS.get(pv, pv.name)


def _read_widget(pv: Pv):
    if pv.kind is Kind.BI:
        return LED()
    if pv.kind is Kind.AI and pv.egu == "%":
        return ProgressBar()
    if pv.kind is Kind.WAVEFORM_IN:
        return ArrayTrace(axis=pv.name)
    if pv.kind in (Kind.STRING_IN, Kind.LONG_STRING_IN):
        return TextRead(format=TextFormat.string)
    return TextRead()


def _groups(pvs: Iterable[Pv], names: dict[Pv, str], order: Sequence[str],
            skip: Iterable[Pv] = ()) -> list[Group]:
    """Spec entries grouped by their screen group, groups in the given order.

    A group's action buttons share one row, so an operator sees them side by side.
    """
    skipped = set(skip)
    grouped: dict[str, list[Pv]] = {group: [] for group in order}
    for pv in pvs:
        if pv not in skipped:
            grouped.setdefault(pv.group, []).append(pv)
    return [Group(name=group, layout=Grid(), children=_group_children(group, members, names))
            for group, members in grouped.items() if members]


def _group_children(group: str, members: list[Pv], names: dict[Pv, str]
                    ) -> list[ComponentUnion]:
    actions = [component(pv, names[pv]) for pv in members if pv.kind is Kind.ACTION]
    others = [component(pv, names[pv]) for pv in members if pv.kind is not Kind.ACTION]
    if not actions:
        return others
    return [Group(name=f"{group}Actions", label="Actions", layout=Row(), children=actions),
            *others]


def motor_device() -> Device:
    """motor.bob: one motor's config, homing controls and status, and its motor record."""
    names = {pv: pv.full_name(P, M) for pv in MOTOR_PVS}
    groups = _groups(MOTOR_PVS, names, ("Config", "Homing", "Status", "Motor"))
    # The tolerance is bench-wide, but it is part of how this motor gets homed.
    tolerance = component(BenchRecords.Tolerance, BenchRecords.Tolerance.full_name(P),
                          label="Tolerance (bench-wide)")
    groups[0] = Group(name=groups[0].name, layout=groups[0].layout,
                      children=[*groups[0].children, tolerance])
    record = [_record_field(field, label, widget) for field, label, widget in
              MOTOR_RECORD_FIELDS]
    groups.append(Group(name="MotorRecord", label=f"Motor record {ROOT}", layout=Grid(),
                        children=record))
    return Device(label=f"Motor {M} ({P}{scope_prefix(Scope.MOTOR, M)})", children=groups)


def _record_field(field: str, label: str, widget: str) -> SignalR:
    read: LED | TextRead
    if widget == "led":
        read = LED()
    elif widget == "hex":
        read = TextRead(format=TextFormat.hexadecimal)
    else:
        read = TextRead()
    return SignalR(name=f"Record{field}", label=label, read_pv=f"{ROOT}.{field}",
                   read_widget=read)


def bench_device(motors: dict[str, str]) -> Device:
    """bench.bob: one row per motor (opening motor.bob), then the bench-wide controls.

    The rows sit at the top level of the screen, where pvi gives every column the full
    widget width (inside a group it squeezes a row into one form column).
    """
    rows: list[ComponentUnion] = []
    for index, (motor, root) in enumerate(motors.items()):
        # pvi names must be PascalCase; motor names need not be ("x_1"), so number them.
        tag = f"Motor{index + 1}"
        cells: list[ComponentUnion] = [
            DeviceRef(name=f"{tag}Open", label="Open ⧉",
                      pv=f"{P}{scope_prefix(Scope.MOTOR, motor)}",
                      ui="motor.bob", macros={"P": P, "M": motor, "ROOT": root})]
        cells += [component(pv, pv.full_name(P, motor), tag=tag) for pv, _ in BENCH_ROW]
        header = ["Screen", *(title for _, title in BENCH_ROW)] if index == 0 else None
        rows.append(Group(name=tag, label=motor, layout=Row(header=header), children=cells))
    return Device(label=f"Motion test bench ({P})", children=[*rows, *_bench_rows()])


def _bench_rows() -> list[ComponentUnion]:
    """Bench-wide homing buttons and summary in rows, then the bench's long strings."""

    def cells(pvs: Iterable[Pv]) -> list[ComponentUnion]:
        # Short labels from the names: the row label column is narrow on this screen.
        return [component(pv, pv.full_name(P), label=None) for pv in pvs]

    return [
        Group(name="BenchHoming", label="Bench", layout=Row(), children=cells(BENCH_BUTTONS)),
        Group(name="BenchSummary", label=" ",
              layout=Row(header=[pv.name for pv in BENCH_SUMMARY]),
              children=cells(BENCH_SUMMARY)),
        *cells(BENCH_STRINGS),
    ]


def sync_device() -> Device:
    """sync.bob: scan setup, what the next scan file carries (proposal, experiment,
    sample, user), preview, run/abort, progress and results (plot added later)."""
    names = {pv: pv.full_name(P) for pv in SYNC_PVS}
    # The positions go on one plot added after formatting: pvi draws one trace per plot.
    waveforms = [pv for pv in SYNC_PVS if pv.kind is Kind.WAVEFORM_IN]
    groups = _groups(SYNC_PVS, names,
                     ("Setup", "Metadata", "Preview", "Control", "Status", "Data"),
                     skip=waveforms)
    return Device(label=f"Detector synchronisation ({P}{scope_prefix(Scope.SYNC)})",
                  children=groups)


# pvi's formatter sizes (label column, widget column) per screen: bench.bob is a wide
# table of ten columns, the others are label/value forms.
FORMATTER_SIZES = {"bench.bob": (90, 100), "motor.bob": (240, 220), "sync.bob": (240, 220)}


def _format(device: Device, path: Path) -> etree._ElementTree:
    label_width, widget_width = FORMATTER_SIZES[path.name]
    DLSFormatter(label_width=label_width, widget_width=widget_width).format(device, path)
    tree = etree.parse(str(path), etree.XMLParser(remove_blank_text=True))
    _bind_action_buttons(tree)
    return tree


def _bind_action_buttons(tree: etree._ElementTree) -> None:
    """Give each write-PV button its action's PV (pvi leaves its template's placeholder).

    Phoebus uses a button's own PV for the write-access check and the alarm border.
    """
    for widget in tree.getroot().iter("widget"):
        action_pv = widget.findtext("actions/action/pv_name")
        own = widget.find("pv_name")
        if widget.get("type") == "action_button" and action_pv and own is not None:
            own.text = action_pv


def _set_default_macros(tree: etree._ElementTree, macros: dict[str, str]) -> None:
    """Display-level macros: the screen opens with these unless the caller passes others."""
    display = tree.getroot()
    element = display.find("macros")
    if element is None:
        element = etree.Element("macros")
        display.insert(0, element)
    for macro, value in macros.items():
        etree.SubElement(element, macro).text = value


def _colour(parent: etree._Element, name: str, rgb: tuple[int, int, int]) -> None:
    red, green, blue = rgb
    etree.SubElement(parent, "color", name=name, red=str(red), green=str(green),
                     blue=str(blue))


def _add_state_colours(tree: etree._ElementTree, state: Pv) -> int:
    """Colour every text update of a State PV by its value; returns how many."""
    labels = [_option_label(o) for o in state.options]
    count = 0
    for widget in tree.getroot().iter("widget"):
        pv_name = widget.findtext("pv_name") or ""
        if widget.get("type") != "textupdate" or not pv_name.endswith(f":{state.name}"):
            continue
        etree.SubElement(widget, "transparent").text = "false"
        rule = etree.SubElement(etree.SubElement(widget, "rules"), "rule",
                                name="State colour", prop_id="background_color",
                                out_exp="false")
        for index, label in enumerate(labels):
            if label in STATE_COLOURS:
                exp = etree.SubElement(rule, "exp", bool_exp=f"pv0=={index}")
                _colour(etree.SubElement(exp, "value"), label, STATE_COLOURS[label])
        etree.SubElement(rule, "pv_name").text = pv_name
        count += 1
    return count


def _widen_bench_strings(tree: etree._ElementTree) -> None:
    """Give the messages on bench.bob room to be read: pvi makes every column equal."""
    display = tree.getroot()
    widgets = display.findall("widget")

    def pv_of(widget: etree._Element) -> str:
        return widget.findtext("pv_name") or ""

    motor_messages = [w for w in widgets
                      if pv_of(w).endswith(f":{MotorRecords.Message.name}")]
    column_x = {w.findtext("x") for w in motor_messages}
    header = dict(BENCH_ROW)[MotorRecords.Message]
    headers = [w for w in widgets if w.get("type") == "label"
               and w.findtext("text") == header and w.findtext("x") in column_x]
    for widget in motor_messages + headers:
        _grow(widget, "width", BENCH_MESSAGE_EXTRA)
    right = max(_number(w, "x") + _number(w, "width") for w in widgets)
    bench_strings = {pv.full_name(P) for pv in BENCH_STRINGS}
    for widget in widgets:
        if pv_of(widget) in bench_strings:
            _child(widget, "width").text = str(right - _number(widget, "x"))
    _child(display, "width").text = str(right + 5)


def _fit_title(tree: etree._ElementTree) -> None:
    """Stretch pvi's title bar (the first widget) over the whole display."""
    display = tree.getroot()
    _child(_child(display, "widget"), "width").text = display.findtext("width")


def _child(element: etree._Element, tag: str) -> etree._Element:
    """The first child `tag`, which pvi's output always has (an error names it if not)."""
    child = element.find(tag)
    if child is None:
        raise ValueError(f"<{element.tag}> has no <{tag}>")
    return child


def _number(element: etree._Element, tag: str) -> int:
    return int(_child(element, tag).text or 0)


def _grow(widget: etree._Element, tag: str, by: int) -> None:
    _child(widget, tag).text = str(_number(widget, tag) + by)


def _add_sync_plot(tree: etree._ElementTree) -> None:
    """An x/y plot of the measured positions against the set positions, right of the form."""
    display = tree.getroot()
    width = int(display.findtext("width") or 0)
    height = int(display.findtext("height") or 0)
    plot_width, plot_height = 640, 480
    plot = etree.SubElement(display, "widget", type="xyplot", version="2.0.0")
    etree.SubElement(plot, "name").text = "PositionsPlot"
    for tag, value in (("x", width + 5), ("y", 30), ("width", plot_width),
                       ("height", plot_height)):
        etree.SubElement(plot, tag).text = str(value)
    etree.SubElement(plot, "title").text = "Positions against set positions"
    x_axis = etree.SubElement(plot, "x_axis")
    etree.SubElement(x_axis, "title").text = "Set position"
    etree.SubElement(x_axis, "autoscale").text = "true"
    y_axes = etree.SubElement(plot, "y_axes")
    y_axis = etree.SubElement(y_axes, "y_axis")
    etree.SubElement(y_axis, "title").text = "Measured position"
    etree.SubElement(y_axis, "autoscale").text = "true"
    _add_traces(etree.SubElement(plot, "traces"))
    _child(display, "width").text = str(width + plot_width + 10)
    _child(display, "height").text = str(max(height, plot_height + 35))


def _add_traces(traces: etree._Element) -> None:
    # x is the set position for both traces: the set positions draw the ideal line and
    # the measured positions sit on it, or show how far off they were.
    for pv, rgb, line, point in SYNC_TRACES:
        trace = etree.SubElement(traces, "trace")
        etree.SubElement(trace, "name").text = pv.name
        etree.SubElement(trace, "x_pv").text = SYNC_PLOT_X.full_name(P)
        etree.SubElement(trace, "y_pv").text = pv.full_name(P)
        etree.SubElement(trace, "err_pv").text = ""
        etree.SubElement(trace, "axis").text = "0"
        etree.SubElement(trace, "trace_type").text = line
        _colour(etree.SubElement(trace, "color"), pv.name, rgb)
        etree.SubElement(trace, "line_width").text = line
        etree.SubElement(trace, "point_type").text = point
        etree.SubElement(trace, "point_size").text = "6"


def render(config: cfg.BenchConfig, prefix: str = DEFAULT_PREFIX) -> dict[str, bytes]:
    """Every screen's file name and bytes, for the motors in this config."""
    roots = {name: motor.pv_root for name, motor in config.motors.items()}
    first, first_root = next(iter(roots.items()))
    plans = {
        "bench.bob": (bench_device(roots), {"P": prefix}),
        "motor.bob": (motor_device(), {"P": prefix, "M": first, "ROOT": first_root}),
        "sync.bob": (sync_device(), {"P": prefix}),
    }
    screens: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="benchioc-screens-") as tmp:
        for file_name, (device, macros) in plans.items():
            tree = _format(device, Path(tmp) / file_name)
            _set_default_macros(tree, macros)
            if file_name == "bench.bob":
                _widen_bench_strings(tree)
            if file_name == "sync.bob":
                _add_state_colours(tree, SyncRecords.State)
                _add_sync_plot(tree)
            else:
                _add_state_colours(tree, MotorRecords.State)
            _fit_title(tree)
            extra = sorted(p.name for p in Path(tmp).iterdir() if p.name not in SCREENS)
            if extra:
                raise RuntimeError(f"pvi wrote sub-screens {extra} that nothing opens")
            screens[file_name] = etree.tostring(tree, pretty_print=True,
                                                xml_declaration=True, encoding="UTF-8")
    return screens


PV_TAGS = ("pv_name", "x_pv", "y_pv")
_MACRO = re.compile(r"\$\((\w+)\)")


def default_macros(data: bytes) -> dict[str, str]:
    """The display-level macros a screen opens with when nothing passes any."""
    element = etree.fromstring(data).find("macros")
    return {} if element is None else {child.tag: child.text or "" for child in element}


def referenced_pvs(data: bytes, macros: dict[str, str] | None = None) -> set[str]:
    """Every PV name a screen refers to, macros expanded (given ones over the defaults).

    Raises ValueError naming the macro when a PV still refers to one nobody defined.
    """
    values = {**default_macros(data), **(macros or {})}
    root = etree.fromstring(data)
    names = set()
    for tag in PV_TAGS:
        for element in root.iter(tag):
            parent = element.getparent()
            text = (element.text or "").strip()
            if (parent is not None and parent.tag == "macros") or not text:
                continue
            names.add(_expand(text, values))
    return names


def _expand(text: str, macros: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in macros:
            raise ValueError(f"{text!r} uses macro $({match.group(1)}), which has no value "
                             f"(known: {', '.join(sorted(macros)) or 'none'})")
        return macros[match.group(1)]

    return _MACRO.sub(value, text)


def write(config: cfg.BenchConfig, out_dir: Path, prefix: str = DEFAULT_PREFIX) -> list[Path]:
    """Write opi/*.bob; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for file_name, data in render(config, prefix).items():
        path = out_dir / file_name
        path.write_bytes(data)
        paths.append(path)
        log.info("wrote %s", path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchioc.tools.screens",
        description="Generate the Phoebus screens opi/*.bob from the PV spec.")
    parser.add_argument("--config", default="configs/bench.yaml",
                        help="bench config whose motors get rows on bench.bob")
    parser.add_argument("--out", default="opi", help="folder to write the .bob files to")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="default value of macro P")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write(cfg.load(Path(args.config)).config, Path(args.out), args.prefix)


if __name__ == "__main__":
    main()
