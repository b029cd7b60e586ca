"""What Julia prints under ``JULIA_DEBUG=loading``: the log records of its default logger, and
the loader's ``@debug`` messages about cache files (base/loading.jl), read exactly.

The default logger of a Julia session is ``Logging.ConsoleLogger(stderr)`` (stdlib Logging,
ConsoleLogger.jl ``handle_message``): a record is ``┌ Debug: <first message line>``, one
``│ <line>`` per further message line and per keyword argument (``│   key = value``; a value of
several lines as ``│   key =`` then ``│    <line>``), and a last line ``└ @ <module> <file>:<line>``
(with ``right_justify = 0`` the location always gets a line of its own). A one-line record
without location, ``[ Info: <message>``, is only printed for Info. With ``--color=no`` there are
no escape sequences.

Every Debug record located in ``Base loading.jl`` must match one of the messages of the session's
Julia version (``TEMPLATES``, from base/loading.jl of each supported version; how each was settled
is said beside it); anything else there raises :class:`LoadingLogError` rather than a guess.
Records of other modules and lines that are no record (a package printing to stderr) are kept,
not judged.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from depotdelivery.errors import JuliaOutputError

__all__ = [
    "SUPPORTED",
    "TEMPLATES",
    "LoadEvent",
    "LoadingLog",
    "LoadingLogError",
    "LogRecord",
    "RejectEvent",
    "Template",
    "parse_flags",
    "parse_loading_log",
    "parse_pkgid",
    "read_records",
]

SUPPORTED = ("1.10", "1.11", "1.12")


class LoadingLogError(JuliaOutputError, ValueError):
    """Julia printed loading output that depotdelivery does not understand (exit 13)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One record of Julia's ConsoleLogger: level, message and keyword lines (without the box
    characters), where it was logged (None for ``[ Info:`` records), its first stderr line (1-based)."""

    level: str
    lines: tuple[str, ...]
    module: str | None
    file: str | None
    line: int | None
    at: int

    @property
    def from_loading(self) -> bool:
        return self.module == "Base" and self.file == "loading.jl"


_OPEN = re.compile(r"┌ (?P<level>Debug|Info|Warning|Error|LogLevel\(-?\d+\)): ?(?P<text>.*)")
_ONE = re.compile(r"\[ (?P<level>Debug|Info|Warning|Error|LogLevel\(-?\d+\)): ?(?P<text>.*)")
_WHERE = re.compile(r"└ @ (?:(?P<module>[^\s:]+) )?(?P<file>.+?):(?P<line>\d+)(?:-\d+)?")


def read_records(text: str) -> tuple[list[LogRecord], list[tuple[int, str]]]:
    """Split stderr into log records and the other lines ((line number, text)); LoadingLogError
    for a record that starts and never ends or a box line outside a record."""
    records: list[LogRecord] = []
    stray: list[tuple[int, str]] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line, no = lines[i], i + 1
        one = _ONE.fullmatch(line)
        if one:
            records.append(LogRecord(level=one["level"], lines=(one["text"],), module=None, file=None, line=None, at=no))
            i += 1
            continue
        opened = _OPEN.fullmatch(line)
        if not opened:
            if line.startswith(("│", "└")):
                raise LoadingLogError(f"Julia's stderr line {no}: {_short(line)!r} continues a log record that never began")
            stray.append((no, line))
            i += 1
            continue
        body = [opened["text"]]
        i += 1
        while True:
            if i >= len(lines):
                raise LoadingLogError(f"Julia's stderr line {no}: the {opened['level']} record {_short(body[0])!r} "
                                      f"never ends (output cut off: Julia killed or crashed?)")
            cont = lines[i]
            i += 1
            if cont.startswith("│"):
                body.append(cont[2:] if cont.startswith("│ ") else cont[1:])
                continue
            if not cont.startswith("└"):
                raise LoadingLogError(f"Julia's stderr line {i}: {_short(cont)!r} inside the log record of line {no}")
            where = _WHERE.fullmatch(cont)
            if where:
                records.append(LogRecord(level=opened["level"], lines=tuple(body), module=where["module"],
                                         file=where["file"], line=int(where["line"]), at=no))
            else:  # a multi-line record without location (Info): the last line is message text
                body.append(cont[2:] if cont.startswith("└ ") else cont[1:])
                records.append(LogRecord(level=opened["level"], lines=tuple(body), module=None, file=None,
                                         line=None, at=no))
            break
    return records, stray


def _short(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[:n] + "..."


# -- the loader's messages ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Template:
    """One ``@debug`` message of base/loading.jl: what it means (``kind``: reject, load, other),
    the stale.py REASONS key for a rejection, the Julia minor versions that print it, the first
    line as a regex and the further lines (``rest``: exact regexes, or None: any keyword lines)."""

    kind: str
    reason: str | None
    versions: frozenset[str]
    first: re.Pattern[str]
    rest: tuple[re.Pattern[str], ...] | None = ()


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_FLOAT = r"[-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|NaN|Inf)"
_CACHE = r"(?P<cache>.+?\.ji)"
_PKG = r"(?P<pkg>.*?)"
ALL = frozenset(SUPPORTED)
V110 = frozenset({"1.10"})
V111_UP = frozenset({"1.11", "1.12"})


def _t(kind: str, reason: str | None, versions: frozenset[str], first: str,
       rest: Sequence[str] | None = ()) -> Template:
    return Template(kind, reason, versions, re.compile(first),
                    None if rest is None else tuple(re.compile(r) for r in rest))


# Flags: the 1.10 form prints the session's and the cache's CacheFlags as `name = value, ...`
# (JuliaLang/julia#50918 and #51532 logs, master just after release-1.10 branched); the form
# with `requested flags: CacheFlags(; ...) [byte]` is in the untagged 1.11-series copy of
# loading.jl read for this and in 1.12 (1.12.0-rc1 log in JuliaLang/julia#59365). Which of the
# two 1.11.x releases print could not be read at a tag: both are accepted for 1.11.
_KV = r"(?:\w+ = \w+(?:, \w+ = \w+)*)"
_CF = r"CacheFlags\(; (?:\w+=\w+(?:, \w+=\w+)*)\) \[\d+\]"
_FLAGS_OLD = (rf"  current session: (?P<session>{_KV})", rf"  cache file:      (?P<actual>{_KV})")
_FLAGS_NEW = (rf"  requested flags: (?P<session>{_CF})", rf"  cache file:      (?P<actual>{_CF})")

TEMPLATES: tuple[Template, ...] = (
    # stale_cachefile, check by check (base/loading.jl)
    _t("reject", "incompatible header", frozenset({"1.10", "1.11"}),
       rf"Rejecting cache file {_CACHE} due to it containing an invalid cache header"),
    _t("reject", "incompatible header", frozenset({"1.12"}),
       rf"Rejecting cache file {_CACHE} due to it containing an incompatible cache header"),
    _t("reject", "could not be opened", frozenset({"1.12"}),
       rf"Rejecting cache file {_CACHE} for {_PKG} because it could not be opened",
       (r"  isfile\(cachefile\) = (?:true|false)",)),
    _t("reject", "mismatched flags", frozenset({"1.10", "1.11"}),
       rf"Rejecting cache file {_CACHE} for {_PKG} since the flags are mismatched", _FLAGS_OLD),
    _t("reject", "mismatched flags", V111_UP,
       rf"Rejecting cache file {_CACHE} for {_PKG} since the flags are mismatched", _FLAGS_NEW),
    _t("reject", "requires pkgimages", ALL,
       rf"Rejecting cache file {_CACHE} for {_PKG} since it would require usage of pkgimage"),
    _t("reject", "target mismatch", ALL, rf"Rejecting cache file {_CACHE} for {_PKG}:", None),
    _t("reject", "missing ocachefile", ALL,
       rf"Rejecting cache file {_CACHE} for {_PKG} since pkgimage (?P<ocache>.+) was not found"),
    _t("reject", "for different pkgid", ALL,
       rf"Rejecting cache file {_CACHE} for {_PKG} since it is for (?P<other>.+) instead"),
    # "it is does" is the 1.10 wording (JuliaLang/julia#50918 log); the 1.11 and 1.12 copies say "it does"
    _t("reject", "for different buildid", V110,
       rf"Ignoring cache file {_CACHE} for {_PKG} \((?P<got>{_UUID})\) since it is does not provide "
       rf"desired build_id \((?P<want>{_UUID})\)"),
    _t("reject", "for different buildid", V111_UP,
       rf"Ignoring cache file {_CACHE} for {_PKG} \((?P<got>{_UUID})\) since it does not provide "
       rf"desired build_id \((?P<want>{_UUID})\)"),
    _t("reject", "wrong julia version", frozenset({"1.12"}),
       rf"Rejecting cache file {_CACHE} because it was made with a different julia version"),
    _t("reject", "wrong dep version loaded", ALL,
       rf"Rejecting cache file {_CACHE} because module {_PKG} is already loaded and incompatible\."),
    _t("reject", "dep missing source", ALL, rf"Rejecting cache file {_CACHE} because dependency {_PKG} not found\."),
    _t("reject", "wrong dep buildid", ALL,
       rf"Rejecting cache file {_CACHE} because it provides the wrong build_id \(got (?P<got>{_UUID})\) for "
       rf"{_PKG} \(want (?P<want>{_UUID})\)"),
    _t("reject", "wrong source", ALL, rf"Rejecting cache file {_CACHE} because it is for file (?P<was>.+?) not file (?P<now>.+)"),
    _t("reject", "dep uuid changed", V110, rf"Rejecting cache file {_CACHE} because uuid mapping for (?P<mapping>.+) has changed"),
    _t("reject", "dep uuid changed", V111_UP,
       rf"Rejecting cache file {_CACHE} because uuid mapping for (?P<mapping>.+) has changed, expected (?P<expected>.+)"),
    _t("reject", "include_dependency mtime change", V110,
       rf"Rejecting stale cache file {_CACHE} \(mtime (?P<recorded>{_FLOAT})\) because file (?P<file>.+) "
       rf"\(mtime (?P<actual>{_FLOAT})\) has changed"),
    _t("reject", "missing sourcefile", ALL, rf"Rejecting stale cache file {_CACHE} because file (?P<file>.+) does not exist"),
    _t("reject", "nonresolveable depot", V111_UP, rf"Rejecting stale cache file {_CACHE} because its depot could not be resolved"),
    _t("reject", "include_dependency mtime change", V111_UP,
       rf"Rejecting stale cache file {_CACHE} because mtime of include_dependency (?P<file>.+) has changed "
       rf"\(mtime (?P<actual>{_FLOAT}), before (?P<recorded>{_FLOAT})\)"),
    _t("reject", "include_dependency fsize change", V111_UP,
       rf"Rejecting stale cache file {_CACHE} because file size of (?P<file>.+) has changed "
       rf"\(file size (?P<actual>\d+), before (?P<recorded>\d+)\)"),
    _t("reject", "include_dependency fhash change", V111_UP,
       rf"Rejecting stale cache file {_CACHE} because hash of (?P<file>.+) has changed "
       rf"\(hash (?P<actual>\d+), before (?P<recorded>\d+)\)"),
    _t("reject", "invalid checksum", ALL, rf"Rejecting cache file {_CACHE} because it has an invalid checksum"),
    _t("reject", "ocachefile invalid checksum", ALL, rf"Rejecting cache file {_CACHE} because (?P<ocache>.+) has an invalid checksum"),
    _t("reject", "preferences hash mismatch", ALL,
       rf"Rejecting cache file {_CACHE} because preferences hash does not match "
       rf"0x(?P<recorded>[0-9a-f]+) != 0x(?P<actual>[0-9a-f]+)"),
    # _require_search_from_serialized: a candidate whose package dependencies cannot be loaded
    _t("reject", "dependency not loadable", ALL,
       rf"Rejecting cache file {_CACHE} because required dependency {_PKG} with build ID (?P<build>{_UUID}) "
       rf"is missing from the cache\."),
    _t("reject", "dependency not loadable", ALL,
       rf"Rejecting cache file {_CACHE} because required dependency {_PKG} failed to load from cache file "
       rf"for (?P<depcache>.+)\.", None),
    _t("reject", "wrong dep version loaded", ALL,
       rf"Rejecting cache file {_CACHE} because module {_PKG} got loaded at a different version than expected\."),
    _t("reject", "deserialization failed", ALL,
       rf"Deserialization checks failed while attempting to load cache from {_CACHE}", None),
    # _include_from_serialized
    _t("load", None, ALL, rf"Loading object cache file (?P<ocache>.+) for {_PKG}"),
    _t("load", None, ALL, rf"Loading cache file {_CACHE} for {_PKG}"),
    # messages that say nothing about which cache loads (kept, not judged)
    _t("other", None, ALL, rf"Generating (?:object )?cache file for {_PKG}"),
    _t("other", None, ALL, r"Extension (?P<ext>\S+) of (?P<parent>\S+) loaded"),
    _t("other", None, ALL, r"Precompiling .*"),
    _t("other", None, ALL, r"Waiting for another (?:process|machine) .* to finish precompiling .*"),
    _t("other", None, ALL, r"Skipping precompilation due to precompilable error\. Importing .*", None),
    _t("other", None, ALL, r"Aborting `create_expr_cache'", None),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RejectEvent:
    """Julia rejected a candidate cache file: the stale.py REASONS key and what it printed."""

    cache: str
    reason: str
    pkg: str | None
    values: dict[str, str]
    at: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "reason": self.reason, "pkg": self.pkg, "values": dict(self.values),
                "line": self.at, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadEvent:
    """Julia loaded a cache file (``cache`` is the ``.ji``; ``native`` when it mapped the ``.so``)."""

    cache: str
    native: bool
    pkg: str
    at: int

    def to_dict(self) -> dict[str, Any]:
        return {"cache": self.cache, "native": self.native, "pkg": self.pkg, "line": self.at}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadingLog:
    """A parsed stderr: the loader's rejections and loads in order, the other records and lines."""

    layout: str
    rejections: tuple[RejectEvent, ...]
    loads: tuple[LoadEvent, ...]
    others: tuple[LogRecord, ...] = ()
    stray: tuple[tuple[int, str], ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"julia": self.layout, "rejections": [r.to_dict() for r in self.rejections],
                "loads": [x.to_dict() for x in self.loads], "warnings": list(self.warnings),
                "other_records": len(self.others), "other_lines": len(self.stray)}


def _layout(julia_version: str) -> str:
    m = re.match(r"(\d+)\.(\d+)", julia_version)
    layout = f"{m[1]}.{m[2]}" if m else julia_version
    if layout not in SUPPORTED:
        raise LoadingLogError(f"Julia {julia_version}: depotdelivery knows the loading messages of Julia "
                              f"{', '.join(SUPPORTED)} only, not {layout}")
    return layout


def _match(record: LogRecord, layout: str) -> tuple[Template, dict[str, str]] | None:
    first, rest = record.lines[0], record.lines[1:]
    for t in TEMPLATES:
        if layout not in t.versions:
            continue
        m = t.first.fullmatch(first)
        if m is None:
            continue
        values = {k: v for k, v in m.groupdict().items() if v is not None}
        if t.rest is None:
            return t, values
        if len(rest) != len(t.rest):
            continue
        ok = True
        for pattern, line in zip(t.rest, rest):
            lm = pattern.fullmatch(line)
            if lm is None:
                ok = False
                break
            values.update({k: v for k, v in lm.groupdict().items() if v is not None})
        if ok:
            return t, values
    return None


def parse_loading_log(text: str, julia_version: str) -> LoadingLog:
    """Read Julia's stderr of a ``JULIA_DEBUG=loading`` session of ``julia_version``."""
    layout = _layout(julia_version)
    records, stray = read_records(text)
    rejections: list[RejectEvent] = []
    loads: list[LoadEvent] = []
    others: list[LogRecord] = []
    warnings = [f"{r.level}: {' / '.join(r.lines)}" for r in records if r.level in ("Warning", "Error")]
    for r in records:
        if not (r.from_loading and r.level == "Debug"):
            others.append(r)
            continue
        got = _match(r, layout)
        if got is None:
            raise LoadingLogError(f"Julia's stderr line {r.at}: a loading message depotdelivery does not know for "
                                  f"Julia {layout}: {_short(r.lines[0], 160)!r} (base/loading.jl:{r.line})")
        t, values = got
        if t.kind == "reject":
            assert t.reason is not None
            pkg = values.pop("pkg", None)
            reason = t.reason
            if reason == "wrong dep version loaded" and parse_pkgid(pkg or "") == ("Core", None):
                reason = "wrong julia version"  # record_reason: Core's build id differs (1.10, 1.11)
            rejections.append(RejectEvent(cache=values.pop("cache"), reason=reason, pkg=pkg, values=values, at=r.at,
                                          message="\n".join(r.lines)))
        elif t.kind == "load":
            native = "ocache" in values
            cache = values["ocache"].rsplit(".", 1)[0] + ".ji" if native else values["cache"]
            loads.append(LoadEvent(cache=cache, native=native, pkg=values.get("pkg", ""), at=r.at))
        else:
            others.append(r)
    return LoadingLog(layout=layout, rejections=tuple(rejections), loads=tuple(loads), others=tuple(others),
                      stray=tuple(stray), warnings=tuple(warnings))


_PKG_PLAIN = re.compile(rf"(?P<name>[^\s\[\]]+)(?: \[(?P<uuid>{_UUID})\])?")
_PKG_REPR = re.compile(rf'Base\.PkgId\((?:Base\.UUID\("(?P<uuid>{_UUID})"\)|nothing), "(?P<name>[^"]*)"\)'
                       rf'|Base\.PkgId\("(?P<name2>[^"]*)"\)')


def parse_pkgid(text: str) -> tuple[str, str | None] | None:
    """(name, uuid) of a PkgId as Julia prints it: ``Name [uuid]`` (``repr("text/plain", pkg)``,
    and ``string(pkg)`` in 1.10) or ``Base.PkgId(Base.UUID("uuid"), "Name")`` (``string(pkg)`` from
    1.11); None for an empty one (``PkgId("")`` prints as nothing in 1.10)."""
    m = _PKG_REPR.fullmatch(text)
    if m:
        name = m["name"] if m["name"] is not None else m["name2"]
        return (name, m["uuid"]) if name else None
    m = _PKG_PLAIN.fullmatch(text)
    return (m["name"], m["uuid"]) if m else None


_FLAG_NAMES = ("use_pkgimages", "debug_level", "check_bounds", "inline", "opt_level")


def parse_flags(text: str) -> dict[str, int]:
    """The CacheFlags Julia printed (either form) as integers (booleans 0/1)."""
    body = text[len("CacheFlags(; "):text.rindex(")")] if text.startswith("CacheFlags(") else text
    out: dict[str, int] = {}
    for part in body.split(", "):
        key, _, value = part.replace(" = ", "=").partition("=")
        out[key] = {"true": 1, "false": 0}.get(value, int(value) if value.isdigit() else -1)
    return {k: out[k] for k in _FLAG_NAMES if k in out}
