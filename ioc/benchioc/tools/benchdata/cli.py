"""`bench-data`: the scan files of a data folder, from the files' own metadata.

    bench-data [--config FILE | --dir DIR] list [--since DATE] [--motor M] [--proposal P] [--json]
    bench-data show FILE|PID [--png OUT]
    bench-data verify [PATH] [--nexus]
    bench-data embargo [--release-before DATE] [--json]
    bench-data cite PID|FILE
    bench-data reduce FILE|PID

The data folder is `--dir`, else the `data.directory` of `--config` (relative to the
config file's folder, as the IOC takes it), else that of configs/bench.yaml when run
from the project folder, else the current folder.

Exit codes: 0 done; 1 `verify` found problems (one line each); 2 a user error (a file
that is not a scan file, a PID not found, a bad date...), said in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from ... import __version__
from ... import config as cfg
from .quicklook import quick_look, summary
from .reduce import reduce_scan
from .scanfile import BenchDataError, ScanInfo, find_scan, iter_infos, read_info
from .verify import verify_file, verify_folder

PROG = "bench-data"
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CONFIG = Path("configs") / "bench.yaml"
_CONTEXT = {"help_option_names": ["--help", "-h"]}


# --- the data folder and dates -----------------------------------------------------------
def data_directory(config_file: str | None, directory: str | None) -> Path:
    if directory:
        return Path(directory)
    if config_file is None and not DEFAULT_CONFIG.exists():
        return Path(".")
    doc = cfg.load(config_file or DEFAULT_CONFIG)
    folder = Path(doc.config.data.directory)
    return folder if folder.is_absolute() else doc.path.resolve().parent / folder


def folder(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj
    return data_directory(obj["config"], obj["dir"])


def parse_date(value: str, option: str) -> dt.datetime:
    """An ISO date or date and time; without a zone, local time."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise BenchDataError(f"{option} {value!r} is not a date: use YYYY-MM-DD or "
                             "YYYY-MM-DDTHH:MM") from None
    return moment if moment.tzinfo else moment.astimezone()


def _day(moment: dt.datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d") if moment else "?"


def _when(moment: dt.datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "?"


def _note_skipped(skipped: list[str]) -> None:
    for line in skipped:
        click.echo(f"{PROG}: skipped {line}", err=True)


# --- commands ----------------------------------------------------------------------------
@click.group(context_settings=_CONTEXT)
@click.option("--config", "config_file", metavar="FILE",
              help="bench config whose data.directory holds the scans")
@click.option("--dir", "-d", "directory", metavar="DIR", help="the data folder itself")
@click.version_option(__version__, prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, directory: str | None) -> None:
    """The bench's scan files: list, quick look, verify, embargo, cite, reduce."""
    ctx.obj = {"config": config_file, "dir": directory}


LIST_HEADER = ("start", "PID", "mode", "motor", "points", "frames", "missed", "embargo",
               "file")


def list_rows(infos: list[ScanInfo]) -> list[tuple[str, ...]]:
    return [(_when(i.start), i.pid, i.mode, i.motor, str(i.points), str(i.frames),
             str(i.missed_frames), _day(i.embargo_until), i.path.name) for i in infos]


def format_table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


@cli.command("list")
@click.option("--since", metavar="DATE", help="scans started on or after DATE")
@click.option("--motor", metavar="M", help="scans of this motor only")
@click.option("--proposal", metavar="P", help="scans of this proposal only")
@click.option("--json", "as_json", is_flag=True, help="a JSON array, one object per scan")
@click.pass_context
def list_command(ctx: click.Context, since: str | None, motor: str | None,
                 proposal: str | None, as_json: bool) -> int:
    """One line per scan: start, PID, mode, motor, points, frames, missed frames,
    embargo date, file. Frames files and derived files are not scans."""
    after = parse_date(since, "--since") if since else None
    skipped: list[str] = []
    where = folder(ctx)
    infos = [i for i in iter_infos(where, problems=skipped)
             if (after is None or (i.start is not None and i.start >= after))
             and (motor is None or i.motor == motor)
             and (proposal is None or i.proposal == proposal)]
    infos.sort(key=lambda i: (i.start is None, i.start or dt.datetime.min, i.path.name))
    _note_skipped(skipped)
    if as_json:
        click.echo(json.dumps([i.as_json() for i in infos], indent=1))
    elif infos:
        for line in format_table([LIST_HEADER, *list_rows(infos)]):
            click.echo(line)
    else:
        click.echo(f"no scans in {where}" + (" that match" if since or motor or proposal
                                             else ""), err=True)
    return EXIT_OK


@cli.command()
@click.argument("target", metavar="FILE|PID")
@click.option("--png", "png", metavar="OUT", type=click.Path(dir_okay=False),
              help="where to write the picture (default ./<scan>-quicklook.png)")
@click.pass_context
def show(ctx: click.Context, target: str, png: str | None) -> int:
    """A quick look at one scan: signal, centroid, set and measured positions, timing,
    as a PNG and in words."""
    path = find_scan(target, _folder_or_none(ctx))
    out = Path(png) if png else Path(f"{path.stem}-quicklook.png")
    for line in summary(quick_look(path, out)):
        click.echo(line)
    return EXIT_OK


def _folder_or_none(ctx: click.Context) -> Path | None:
    try:
        return folder(ctx)
    except cfg.ConfigError:
        return None


@cli.command()
@click.argument("path", required=False, metavar="[PATH]")
@click.option("--nexus", "full", is_flag=True,
              help="also run nexusformat's full validator (slower)")
@click.pass_context
def verify(ctx: click.Context, path: str | None, full: bool) -> int:
    """Checksums, readability, NeXus layout, policy metadata and linked frames of every
    file in the data folder (or PATH, a folder or one file). Exit 1 if any is wrong."""
    where = Path(path) if path else folder(ctx)
    if not where.exists():
        raise BenchDataError(f"{where}: no such file or folder")
    report = verify_folder(where, full=full) if where.is_dir() else verify_file(where,
                                                                               full=full)
    for problem in report.problems:
        click.echo(problem)
    for note in report.notes:
        click.echo(f"{PROG}: note: {note}", err=True)
    files = f"{report.checked} file{'s' if report.checked != 1 else ''}"
    if report.problems:
        click.echo(f"{PROG}: {len(report.problems)} problem(s) in {files} under {where}",
                   err=True)
        return EXIT_PROBLEMS
    click.echo(f"{files} checked under {where}: all good")
    return EXIT_OK


@cli.command()
@click.option("--release-before", metavar="DATE",
              help="only scans whose embargo ends before DATE")
@click.option("--json", "as_json", is_flag=True, help="a JSON array")
@click.pass_context
def embargo(ctx: click.Context, release_before: str | None, as_json: bool) -> int:
    """Which scans are still under embargo (and until when) and which have passed it."""
    now = dt.datetime.now().astimezone()
    before = parse_date(release_before, "--release-before") if release_before else None
    skipped: list[str] = []
    infos = [i for i in iter_infos(folder(ctx), problems=skipped)
             if before is None or (i.embargo_until is not None and i.embargo_until < before)]
    infos.sort(key=lambda i: (i.embargo_until is None, i.embargo_until or now))
    _note_skipped(skipped)
    if as_json:
        click.echo(json.dumps([{"pid": i.pid, "file": i.path.name,
                                "embargo_until": i.embargo_until.isoformat()
                                if i.embargo_until else None,
                                "under_embargo": i.under_embargo(now)} for i in infos],
                              indent=1))
        return EXIT_OK
    under = [i for i in infos if i.under_embargo(now)]
    passed = [i for i in infos if not i.under_embargo(now)]
    for title, group, verb in (("under embargo", under, "until"),
                               ("embargo passed", passed, "since")):
        click.echo(f"{title}: {len(group)}")
        for i in group:
            click.echo(f"  {verb} {_day(i.embargo_until)}  {i.pid}  {i.proposal or '-'}  "
                       f"{i.path.name}")
    return EXIT_OK


def citation(info: ScanInfo) -> str:
    """The line the data policy asks a publication to carry."""
    bench = info.bench or "motion test bench"
    proposal = f"proposal {info.proposal}" if info.proposal else "no proposal recorded"
    experiment = f", experiment {info.experiment}" if info.experiment else ""
    return (f"{bench[0].upper()}{bench[1:]}, {info.mode} scan of motor {info.motor}, "
            f"{proposal}{experiment}, recorded {_day(info.start)}. "
            f"Persistent identifier: {info.pid}.")


@cli.command()
@click.argument("target", metavar="PID|FILE")
@click.pass_context
def cite(ctx: click.Context, target: str) -> int:
    """The citation line for one scan (PID, proposal, bench, date)."""
    info = read_info(find_scan(target, _folder_or_none(ctx)))
    click.echo(citation(info))
    now = dt.datetime.now().astimezone()
    if info.under_embargo(now):
        click.echo(f"{PROG}: note: {info.pid} is under embargo until "
                   f"{_day(info.embargo_until)}", err=True)
    return EXIT_OK


@cli.command()
@click.argument("target", metavar="FILE|PID")
@click.pass_context
def reduce(ctx: click.Context, target: str) -> int:
    """Write a derived file beside the raw one: dark-subtracted, flat-normalised frames
    and the per-point intensity and centroid, with provenance and a sidecar."""
    reduced = reduce_scan(find_scan(target, _folder_or_none(ctx)))
    corrections = [f"{reduced.darks} dark" if reduced.darks else "no darks",
                   f"{reduced.flats} flat" if reduced.flats else "no flats"]
    click.echo(f"{reduced.path}: {reduced.data_frames} data frames of {reduced.points} "
               f"points reduced ({', '.join(corrections)} frames"
               + (f"; {reduced.masked_pixels} pixels without light in the flat set to 0"
                  if reduced.masked_pixels else "") + f") from {reduced.raw_pid}")
    return EXIT_OK


# --- entry point -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"{PROG}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as error:  # click >= 8.2: group without a command
        click.echo(error.ctx.get_help() if error.ctx else str(error), err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_USAGE)
    except (BenchDataError, cfg.ConfigError) as error:
        click.echo(f"{PROG}: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        click.echo(f"{PROG}: {where}{error.strerror or error}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo(f"{PROG}: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
