"""Plain areaDetector records, declared as data: the records of ADCore's templates that a
client connects to (ophyd's `AreaDetectorCam`, `ImagePlugin`, `HDF5Plugin`) but that the
simulation does not act on, each with the genuine record type (RTYP) and, where the
genuine has one, its `_RBV` twin that follows every put.

`records_group(name, specs)` makes a PVGroup class of them; the camera and the plugins
serve it as a `SubGroup(..., prefix="")` beside their own, behaving records, and read or
write a record by name through the group's `pvdb` (`record(group, "ShutterControl")`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty
from caproto.server.server import PVGroupMeta

NO_YES = ("No", "Yes")
DISABLE_ENABLE = ("Disable", "Enable")
DATA_TYPES = ("Int8", "UInt8", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
              "Float32", "Float64")
COLOR_MODES = ("Mono", "RGB1", "RGB2", "RGB3")
BAYER_PATTERNS = ("RGGB", "GBRG", "GRBG", "BGGR")
NO_LABELS = ("", "")  # a bo without ZNAM/ONAM
STRING_SIZE = 256  # NDArrayBase.template / NDFile.template char waveforms (NELM)

# The genuine output record and its readback's record type.
READBACK = {"ao": "ai", "longout": "longin", "bo": "bi", "mbbo": "mbbi",
            "stringout": "stringin", "waveform": "waveform", "busy": "bi"}


@dataclass(frozen=True)
class Rec:
    """One record: name, genuine record type, initial value; `rbv` adds `name_RBV`."""

    name: str
    record: str
    value: Any = 0
    rbv: bool = False
    enum: tuple[str, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def char_waveform(name: str, value: str = "", *, rbv: bool = False,
                  length: int = STRING_SIZE) -> Rec:
    """A string held in a char waveform (FTVL=CHAR), as areaDetector's long strings."""
    return Rec(name, "waveform", value, rbv, kwargs={"length": length})


# caproto lacks busy (a bo with a put-callback held until the work ends): served as bo.
CAPROTO_RECORD = {"busy": "bo"}


def make_property(name: str, record: str, value: Any, enum: tuple[str, ...] = (),
                  read_only: bool = False, **kwargs: Any) -> pvproperty:
    """A pvproperty with the genuine record type (RTYP) and the matching CA type."""
    record = CAPROTO_RECORD.get(record, record)
    if record == "waveform" and isinstance(value, str):
        # Native DBF_CHAR with NELM elements, as the genuine: `report_as_string` would
        # make caproto announce DBF_STRING x 1, and then `caput -S` (a char array
        # longer than 1) is refused by the client ("Invalid element count requested")
        # before any putter runs.
        length = kwargs.pop("length", STRING_SIZE)
        return pvproperty(name=name, value=value, dtype=ChannelType.CHAR,
                          max_length=length, string_encoding="latin-1",
                          record="waveform", read_only=read_only, **kwargs)
    if enum:
        return pvproperty(name=name, value=value, dtype=ChannelType.ENUM,
                          enum_strings=enum, record=record, read_only=read_only, **kwargs)
    if record in ("stringin", "stringout"):
        return pvproperty(name=name, value=str(value), dtype=ChannelType.STRING,
                          record=record, read_only=read_only, **kwargs)
    if record in ("ai", "ao", "calc", "calcout"):
        return pvproperty(name=name, value=float(value), record=record,
                          read_only=read_only, **kwargs)
    return pvproperty(name=name, value=value, record=record, read_only=read_only, **kwargs)


async def _mirror(group: PVGroup, instance: Any, value: Any) -> Any:
    """A setting's putter: its `_RBV` reads what was written."""
    readback = group.pvdb.get(instance.pvname + "_RBV")
    if readback is not None:
        await readback.write(value)
    return value


def properties(spec: Rec) -> dict[str, pvproperty]:
    """The pvproperties of one Rec, keyed by attribute name."""
    attr = spec.name.replace(".", "_")
    out = {}
    read_only = spec.name.endswith("_RBV") or spec.record in ("ai", "longin", "bi", "mbbi",
                                                             "stringin", "calc")
    setting = make_property(spec.name, spec.record, spec.value, spec.enum,
                            read_only=read_only and not spec.rbv, **spec.kwargs)
    if spec.rbv:
        setting.putter(_mirror)
        out[f"{attr}_rbv"] = make_property(spec.name + "_RBV", READBACK[spec.record],
                                           spec.value, spec.enum, read_only=True,
                                           **spec.kwargs)
    out[attr] = setting
    return out


def records_group(name: str, specs: list[Rec]) -> type[PVGroup]:
    """A PVGroup class serving these records (attribute names are the record names)."""
    namespace: dict[str, Any] = {"__module__": __name__,
                                 "__doc__": f"areaDetector records: {name}"}
    for spec in specs:
        namespace.update(properties(spec))
    group = PVGroupMeta(name, (PVGroup,), namespace)
    assert isinstance(group, type) and issubclass(group, PVGroup)
    return group


def record(group: PVGroup, name: str) -> Any:
    """The served record `name` of a group (its pvdb entry, prefix added)."""
    return group.pvdb[group.prefix + name]


# --- NDArrayBase.template: shared by the driver (cam) and every plugin --------------------
def array_base(port: str, manufacturer: str = "", model: str = "") -> list[Rec]:
    return [
        Rec("PortName_RBV", "stringin", port),
        Rec("ADCoreVersion_RBV", "stringin", "3.13.0"),
        Rec("DriverVersion_RBV", "stringin", "3.13.0"),
        Rec("Manufacturer_RBV", "stringin", manufacturer),
        Rec("Model_RBV", "stringin", model),
        Rec("SerialNumber_RBV", "stringin", "Unknown"),
        Rec("SDKVersion_RBV", "stringin", "Unknown"),
        Rec("FirmwareVersion_RBV", "stringin", "Unknown"),
        Rec("Codec_RBV", "stringin", ""),
        Rec("NDimensions", "longout", 0, rbv=True),
        Rec("Dimensions", "waveform", [0] * 10, rbv=True),
        Rec("ArraySizeX_RBV", "longin", 0),
        Rec("ArraySizeY_RBV", "longin", 0),
        Rec("ArraySizeZ_RBV", "longin", 0),
        Rec("ArraySize_RBV", "longin", 0),
        # longins fed from the Dimensions output waveform (through subArrays), which
        # only a put processes: 0 on the genuine IOC too (ophyd-async's NDFileIO has them)
        Rec("ArraySize0", "longin", 0),
        Rec("ArraySize1", "longin", 0),
        Rec("ArraySize2", "longin", 0),
        Rec("CompressedSize_RBV", "longin", 0),
        Rec("DataType", "mbbo", "UInt16", rbv=True, enum=DATA_TYPES),
        Rec("ColorMode", "mbbo", "Mono", rbv=True, enum=COLOR_MODES),
        Rec("BayerPattern_RBV", "mbbi", "RGGB", enum=BAYER_PATTERNS),
        Rec("UniqueId_RBV", "longin", 0),
        Rec("TimeStamp_RBV", "ai", 0.0),
        Rec("EpicsTSSec_RBV", "longin", 0),
        Rec("EpicsTSNsec_RBV", "longin", 0),
        Rec("ArrayCallbacks", "bo", "Enable", rbv=True, enum=DISABLE_ENABLE),
        Rec("ArrayRate_RBV", "calc", 0.0),
        Rec("NDAttributesFile", "waveform", "", kwargs={"length": STRING_SIZE}),
        Rec("NDAttributesMacros", "waveform", "", kwargs={"length": STRING_SIZE}),
        Rec("NDAttributesStatus", "mbbi", "Attributes file OK",
            enum=("Attributes file OK", "File not found", "XML syntax error",
                  "Macro substitution error")),
        Rec("PoolMaxMem", "ai", 0.0),
        Rec("PoolUsedMem", "ai", 0.0),
        Rec("PoolAllocBuffers", "longin", 0),
        Rec("PoolFreeBuffers", "longin", 0),
        Rec("PoolUsedBuffers", "calc", 0.0),
        Rec("EmptyFreeList", "bo", "", enum=NO_LABELS),
        Rec("NumQueuedArrays", "longin", 0),
        Rec("WaitForPlugins", "bo", "No", enum=NO_YES),
        Rec("AsynIO", "longout", 0),  # an asyn record on the genuine IOC
    ]
