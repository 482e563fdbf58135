"""`bench-data verify`: is every file in a data folder what it claims to be?

For each scan file: its `.sha256` sidecar exists and matches (a truncated or altered file
does not), it opens as HDF5, it is well-formed NeXus for NXbench_scan (every group and
field the application definition names, checked here from the NXDL itself; `--nexus`
also runs nexusformat's full validator, slower), it carries the data policy's metadata,
and the frames file it links is there with as many frames as the file describes. For the
folder: frames files no scan links, sidecars without their file, derived files whose
checksum or provenance is wrong, and temporaries a crashed writer left behind.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import h5py

from ...data import nexus
from .frames import link_target
from .scanfile import (
    DERIVED_ROLE,
    H5_ERRORS,
    SIDECAR_SUFFIX,
    h5_files,
    is_derived_name,
    is_frames_name,
    parse_time,
    progress,
    text,
)

NXDL_NS = {"nx": "http://definition.nexusformat.org/nxdl/3.1"}
POLICY_FIELDS = ("persistent_identifier", "proposal", "experiment", "embargo_until",
                 "embargo_years", "format")
PID_RE = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IN_PROGRESS_S = 120  # an unlinked frames file this fresh may belong to a running scan
SHA_RE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


@dataclass
class Report:
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not problems (stderr)

    def add(self, path: Path, what: str) -> None:
        line = f"{path}: {what}"
        if line not in self.problems:  # the definition and the policy check can agree
            self.problems.append(line)


# --- the application definition, read once --------------------------------------------
@dataclass
class Requirement:
    nx_class: str
    fields: list[str]
    groups: list[Requirement]


def _requirement(node: ET.Element) -> Requirement:
    def required(child: ET.Element) -> bool:
        return child.get("minOccurs", "1") != "0" and child.get("optional") != "true"

    return Requirement(
        node.get("type", ""),
        [f.get("name", "") for f in node.findall("nx:field", NXDL_NS) if required(f)],
        [_requirement(g) for g in node.findall("nx:group", NXDL_NS) if required(g)])


@cache
def definition() -> Requirement:
    root = ET.parse(nexus.DEFINITION_FILE).getroot()
    return Requirement("", [], [_requirement(g) for g in root.findall("nx:group", NXDL_NS)])


def _nx_class(item: h5py.Group) -> str:
    value = item.attrs.get("NX_class", "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _check_group(group: h5py.Group, need: Requirement, where: str, out: list[str]) -> None:
    for name in need.fields:
        if name not in group:
            out.append(f"{where}/{name} is missing")
    for sub in need.groups:
        found = [group[key] for key in group  # external links (frames) are no groups here
                 if isinstance(group.get(key, getlink=True), h5py.HardLink)
                 and group.get(key, getclass=True) is h5py.Group
                 and _nx_class(group[key]) == sub.nx_class]
        if not found:
            out.append(f"{where} has no {sub.nx_class} group")
        for child in found:
            _check_group(child, sub, child.name, out)


def layout_problems(h5: h5py.File) -> list[str]:
    """What the file lacks of NXbench_scan and of the data policy, in words."""
    out: list[str] = []
    entry = h5.get("entry")
    if not isinstance(entry, h5py.Group) or _nx_class(entry) != "NXentry":
        return ["no NXentry group /entry"]
    if text(entry, "definition") != nexus.DEFINITION:
        out.append(f"/entry/definition is {text(entry, 'definition')!r}, not "
                   f"{nexus.DEFINITION!r}")
    for need in definition().groups:
        _check_group(entry, need, "/entry", out)
    policy = entry.get("data_policy")
    if not isinstance(policy, h5py.Group):
        return [*out, "no /entry/data_policy: the policy's metadata is missing"]
    for name in POLICY_FIELDS:
        if name not in policy:
            out.append(f"/entry/data_policy/{name} is missing")
    pid = text(policy, "persistent_identifier")
    if "persistent_identifier" in policy and not PID_RE.match(pid):
        out.append(f"persistent identifier {pid!r} is not a UUID URN")
    if pid != text(entry, "entry_identifier"):
        out.append(f"/entry/entry_identifier {text(entry, 'entry_identifier')!r} differs "
                   f"from the policy's persistent identifier {pid!r}")
    if "embargo_until" in policy and parse_time(text(policy, "embargo_until")) is None:
        out.append(f"embargo date {text(policy, 'embargo_until')!r} is not an ISO time")
    return out


def nexus_validator_problems(path: Path) -> list[str]:
    """nexusformat's validator against the application definition (optional, slow)."""
    try:
        from nexusformat.nexus.validate import validate_application
    except ImportError:
        return ["--nexus needs the nexusformat package, which is not installed"]
    import logging

    quiet = logging.getLogger("NXValidate")  # its handler writes to stdout
    was = quiet.disabled
    quiet.disabled = True  # the counts it returns are kept apart from the output
    try:
        _, errors = validate_application(str(path),
                                         application=str(nexus.DEFINITION_FILE))
    finally:
        quiet.disabled = was
    return [f"nexusformat's validator finds {errors} error(s) against "
            f"{nexus.DEFINITION_FILE.name} (nxvalidate -a says which)"] if errors else []


# --- checksums -------------------------------------------------------------------------
def checksum_problem(path: Path) -> str | None:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.exists():
        return f"no checksum sidecar {sidecar.name}"
    try:
        line = sidecar.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return f"checksum sidecar {sidecar.name} cannot be read"
    match = SHA_RE.match(line)
    if not match:
        return f"checksum sidecar {sidecar.name} is not in sha256sum format"
    if match.group(2) != path.name:
        return f"checksum sidecar {sidecar.name} names {match.group(2)}, not {path.name}"
    if nexus.sha256_of(path) != match.group(1):
        return ("sha256 differs from its sidecar: the file was altered or truncated "
                "after it was written")
    return None


# --- frames ------------------------------------------------------------------------------
def frames_problems(path: Path, h5: h5py.File) -> tuple[list[str], set[str]]:
    """Problems with the frames a scan links, and the names of the files it links."""
    out: list[str] = []
    linked: set[str] = set()
    for where in ("entry/data", "entry/instrument/detector"):
        group = h5.get(where)
        if not isinstance(group, h5py.Group):
            continue
        target = link_target(group)
        if target is None:
            continue
        linked.add(target)
        if not (path.parent / target).exists():
            out.append(f"/{where}/data links {target}, which is missing")
            continue
        try:
            shape = group["data"].shape
        except H5_ERRORS:
            out.append(f"/{where}/data links {target}, which has no readable "
                       f"{nexus.FRAMES_DATASET}")
            continue
        key = group.get("image_key")
        if isinstance(key, h5py.Dataset) and key.shape[0] != shape[0]:
            out.append(f"{target} holds {shape[0]} frames, the scan file describes "
                       f"{key.shape[0]}")
    out += _frames_checksum_problems(path, h5)
    return sorted(set(out)), linked


def _frames_checksum_problems(path: Path, h5: h5py.File) -> list[str]:
    """The frames file against the sha256 the scan file recorded when it linked it."""
    file = h5.get("entry/instrument/detector/file")
    expected = file.attrs.get("sha256", "") if isinstance(file, h5py.Dataset) else ""
    if not expected:
        return []
    target = path.parent / file.asstr()[()]
    if target.exists() and nexus.sha256_of(target) != expected:
        return [f"{target.name} changed since the scan linked it (sha256 differs)"]
    return []


# --- files -------------------------------------------------------------------------------
def check_scan(path: Path, report: Report, *, full: bool = False) -> set[str]:
    """Check one scan file; return the frames files it links."""
    problem = checksum_problem(path)
    if problem:
        report.add(path, problem)
    try:
        h5 = h5py.File(path, "r")
    except H5_ERRORS:
        report.add(path, "not readable as HDF5 (truncated or not HDF5)")
        return set()
    try:
        with h5:
            for problem in layout_problems(h5):
                report.add(path, problem)
            more, linked = frames_problems(path, h5)
    except H5_ERRORS as error:
        report.add(path, f"damaged HDF5 structure ({error})")
        return set()
    for problem in more:
        report.add(path, problem)
    if full:
        for problem in nexus_validator_problems(path):
            report.add(path, problem)
    return linked


def check_derived(path: Path, report: Report) -> None:
    problem = checksum_problem(path)
    if problem:
        report.add(path, problem)
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("derived_by") != DERIVED_ROLE:
                report.add(path, "named like a derived file but not written by bench-data "
                           "reduce")
                return
            process = h5.get("entry/reduction")
            if not isinstance(process, h5py.Group) or not text(process, "raw_sha256"):
                report.add(path, "derived file without its provenance (entry/reduction)")
                return
            raw = path.with_name(text(process, "raw_file"))
            if raw.name and raw.is_file() and nexus.sha256_of(raw) != text(process,
                                                                           "raw_sha256"):
                report.add(path, f"derived from {raw.name}, whose sha256 is no longer the "
                           "one recorded as raw_sha256")
    except H5_ERRORS:
        report.add(path, "not readable as HDF5 (truncated or not HDF5)")


def _kind(path: Path) -> str:
    """scan, derived or other: by the file's own definition, not only its name."""
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("derived_by") == DERIVED_ROLE:
                return "derived"
            entry = h5.get("entry")
            if isinstance(entry, h5py.Group) and "definition" in entry:
                return "scan"
            return "other"
    except H5_ERRORS:
        return "scan"  # unreadable: checked as a scan file, which says what is wrong


def check_frames_file(path: Path, report: Report) -> None:
    """A frames file has no sidecar of its own; it must at least open, with frames."""
    try:
        with h5py.File(path, "r") as h5:
            frames = h5.get(nexus.FRAMES_DATASET)
            if not isinstance(frames, h5py.Dataset) or frames.ndim != 3:
                report.add(path, f"frames file without frames at {nexus.FRAMES_DATASET}")
    except H5_ERRORS:
        report.add(path, "frames file not readable as HDF5 (truncated or not HDF5)")


def verify_file(path: Path, *, full: bool = False) -> Report:
    report = Report(checked=1)
    if is_frames_name(path):
        check_frames_file(path, report)
    elif is_derived_name(path):
        check_derived(path, report)
    elif _kind(path) == "other":
        report.add(path, f"not a scan file (no /entry/definition {nexus.DEFINITION})")
    else:
        check_scan(path, report, full=full)
    return report


def verify_folder(directory: Path, *, full: bool = False) -> Report:
    report = Report()
    files = h5_files(directory)
    linked: set[str] = set()
    frames_files: list[Path] = []
    for path in progress(files, len(files), "verifying"):
        report.checked += 1
        if is_frames_name(path):
            frames_files.append(path)
        elif is_derived_name(path):
            check_derived(path, report)
        elif _kind(path) == "other":
            report.add(path, f"not a scan file (no /entry/definition {nexus.DEFINITION})")
        else:
            linked |= check_scan(path, report, full=full)
    now = time.time()
    for path in frames_files:
        if path.name not in linked and now - path.stat().st_mtime < IN_PROGRESS_S:
            # the camera's plugin writes it while a scan runs; the scan file comes last
            report.notes.append(f"{path}: not linked yet, written in the last "
                                f"{IN_PROGRESS_S} s: a scan still running? not checked")
            continue
        check_frames_file(path, report)
        if path.name not in linked:
            report.add(path, "orphaned frames file: no scan file in the folder links it")
    for sidecar in sorted(directory.glob("*.h5" + SIDECAR_SUFFIX)):
        if not sidecar.with_name(sidecar.name[: -len(SIDECAR_SUFFIX)]).exists():
            report.add(sidecar, "orphaned checksum sidecar: its file is missing")
    for tmp in sorted(directory.glob(".*.tmp")):
        report.add(tmp, "temporary file left by an interrupted write")
    return report
