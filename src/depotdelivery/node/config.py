"""Node configuration: every key, its default, and the precedence arguments > env > files > defaults."""
from __future__ import annotations

import os

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

from depotdelivery.errors import UsageError
from depotdelivery.node._record import Record
from depotdelivery.store.names import check_name

__all__ = ["KEYS", "MODES", "Config", "Key", "config_files", "default_cache", "resolve"]

MODES = ("stack", "symlink", "copy", "overlay")

# Config files in precedence order (the site administrator's file wins over the user's).
SYSTEM_CONFIG = "/etc/depotdelivery/config.toml"
USER_CONFIG = "$XDG_CONFIG_HOME/depotdelivery/config.toml"  # XDG_CONFIG_HOME defaults to ~/.config


def default_cache() -> str:
    """A per-user directory on local disk: ``/var/tmp`` survives reboots on most nodes and,
    unlike ``$HOME``, is rarely a network filesystem (flock and renames must be local)."""
    return f"/var/tmp/depotdelivery-{os.getuid()}"


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _opt_str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _str(value)


def _path(value: Any) -> str:
    # absolute: the path ends up in JULIA_DEPOT_PATH and in cached records that jobs started
    # from other working directories read
    return os.path.abspath(os.path.expanduser(_str(value)))


# What a site-wide `cache` may name per user (one /etc file for every account): the caller's
# user name and uid. Another $VARIABLE is refused rather than left unexpanded or read from a
# job's environment ($TMPDIR would make a cache per job, and nothing would be shared).
_USER_VARS = ("${USER}", "$USER", "${UID}", "$UID")


def _user_path(value: Any) -> str:
    text = _str(value)
    if "$" in text:
        for var in _USER_VARS:
            if var in text:
                text = text.replace(var, str(os.getuid()) if "UID" in var else _user_name())
        if "$" in text:
            raise ValueError(f"only $USER and $UID (or ${{USER}}, ${{UID}}) are expanded, not the rest of {value!r}")
    return _path(text)


def _user_name() -> str:
    # $USER as login shells set it; from the password database when a batch system did not
    name = os.environ.get("USER")
    if not name:
        import pwd

        try:
            name = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:  # a uid with no account (containers): the uid names the directory
            name = str(os.getuid())
    return name


def _opt_path(value: Any) -> str | None:
    return None if value is None or value == "" else _path(value)


def _mode(value: Any) -> str:
    if value not in MODES:
        raise ValueError(f"expected one of {', '.join(MODES)}")
    return str(value)


def _non_negative(value: Any, convert: Callable[[Any], float], unit: str) -> float:
    # ValueError like every key parser: resolve() turns it into a UsageError naming the key
    if isinstance(value, bool):
        raise ValueError(f"expected a number of {unit}")  # noqa: TRY004
    try:
        number = convert(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of {unit}") from None
    if not number >= 0:  # also rejects NaN
        raise ValueError(f"expected a number of {unit} >= 0")
    return number


def _seconds(value: Any) -> float:
    return _non_negative(value, float, "seconds")


def _whole(value: Any) -> int:
    if not isinstance(value, (int, str)):  # int(1.5) would quietly drop the half
        raise TypeError(value)
    return int(value)


def _job_log(value: Any) -> str | None:
    # "off" disables it; a relative path would land wherever each job happens to start
    text = _opt_str(value)
    return text if text in (None, "off") else _user_path(text)


def _bytes(value: Any) -> int:
    return int(_non_negative(value, _whole, "bytes"))


def _channel(value: Any) -> str:
    # names become path components (channels/<c>.json, lock and record files): the store's rule
    return check_name("channel", _str(value))


def _release(value: Any) -> str | None:
    text = _opt_str(value)
    if text is not None:
        if text.count("/") != 1 or "" in text.split("/"):
            raise ValueError("expected NAME/VERSION")
        name, version = text.split("/")
        check_name("release name", name)
        check_name("release version", version)
    return text


class Key(Record):
    """One configuration key: how to parse it, its default, and what it means."""

    __slots__ = ("default", "doc", "name", "parse")
    name: str
    parse: Callable[[Any], Any]
    default: Callable[[], Any]
    doc: str

    @property
    def env(self) -> str:
        return "DEPOTDELIVERY_" + self.name.upper()


KEYS: tuple[Key, ...] = (
    Key(name="repo", parse=_opt_path, default=lambda: None,
        doc="Repository root (a CVMFS mount such as `/cvmfs/sw.example.org/depots`, a shared "
            "filesystem or a local directory). Required."),
    Key(name="channel", parse=_channel, default=lambda: "stable",
        doc="Channel to follow when no release is pinned."),
    Key(name="release", parse=_release, default=lambda: None,
        doc="Pin a release `NAME/VERSION` instead of following a channel (its own signature "
            "is verified)."),
    Key(name="mode", parse=_mode, default=lambda: "stack",
        doc="Hydration mode: `stack` (O(1) depot stacking), `symlink`, `copy` or `overlay`."),
    Key(name="cache", parse=_user_path, default=default_cache,
        doc="Node cache directory (hydrated depots, locks, leases, trust state), one per user: "
            "`$USER`, `$UID` and `~` are expanded, and a cache another user owns or can write to is "
            "refused (docs/security.md). Must be on a local filesystem with working `flock`."),
    Key(name="trusted_keys", parse=_str, default=lambda: "/etc/depotdelivery/keys",
        doc="Directory of trusted publisher public keys (`*.pub`, plus a `revoked` list of key "
            "ids); never taken from the repository."),
    Key(name="microarch", parse=_opt_str, default=lambda: None,
        doc="Override CPU detection with a microarchitecture name (archspec or Julia name), "
            "like EESSI's `EESSI_SOFTWARE_SUBDIR_OVERRIDE`."),
    Key(name="cpuinfo", parse=_opt_str, default=lambda: None,
        doc="Detect the CPU from a recorded `/proc/cpuinfo` file instead of CPUID."),
    Key(name="lock_timeout", parse=_seconds, default=lambda: 600.0,
        doc="Seconds to wait for another process's hydration of the same depot before "
            "failing with exit code 7."),
    Key(name="job_log", parse=_job_log, default=lambda: None,
        doc="Per-node job log: one JSON line per prepared job (release, variant, job id; "
            "docs/site-admin.md). Unset: `<cache>/jobs.jsonl`; `off`: no log."),
    Key(name="job_log_max_bytes", parse=_bytes, default=lambda: 16 * 1024 * 1024,
        doc="Rotate the job log to `<job_log>.1` once it is larger than this (0: never)."),
)
_BY_NAME = {key.name: key for key in KEYS}


class Config(Record):
    """The resolved configuration; ``sources`` says where each value came from."""

    __slots__ = (
        "cache",
        "channel",
        "cpuinfo",
        "job_log",
        "job_log_max_bytes",
        "lock_timeout",
        "microarch",
        "mode",
        "release",
        "repo",
        "sources",
        "trusted_keys",
    )
    repo: str | None
    channel: str
    release: str | None
    mode: str
    cache: str
    trusted_keys: str
    microarch: str | None
    cpuinfo: str | None
    lock_timeout: float
    job_log: str | None
    job_log_max_bytes: int
    sources: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "sources"} | {
            "sources": dict(self.sources)
        }


def config_files(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The config files consulted, highest precedence first: the site's, then the user's under
    ``$XDG_CONFIG_HOME`` (the XDG Base Directory Specification: unset, empty or relative means
    ``~/.config``)."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CONFIG_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".config")
    return (SYSTEM_CONFIG, os.path.join(base, "depotdelivery", "config.toml"))


def _read_file(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"config file {path}: cannot read it ({exc.strerror})") from None
    # tomllib costs a few ms to import: only paid when a config file exists
    import tomllib

    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path}: {exc}") from None
    for name in doc:
        if name not in _BY_NAME:
            raise UsageError(
                f"config file {path}: unknown key {name!r} (known: {', '.join(_BY_NAME)})"
            )
    return doc


def resolve(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    files: Sequence[str] | None = None,
) -> Config:
    """Resolve every key: ``overrides`` (arguments; None means unset) > ``DEPOTDELIVERY_*``
    variables > config ``files`` (default :func:`config_files`, first wins) > defaults; a
    ``channel`` set at a higher level than ``release`` clears that release pin."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for name in overrides:
        if name not in _BY_NAME:
            raise UsageError(f"unknown configuration key {name!r} (known: {', '.join(_BY_NAME)})")
    environ = os.environ if environ is None else environ
    docs = [(p, d) for p in (config_files(environ) if files is None else files) if (d := _read_file(p)) is not None]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    levels: dict[str, int] = {}  # 0 arguments, 1 environment, 2... files, len(docs) + 2 default
    for key in KEYS:
        if key.name in overrides:
            raw, where, levels[key.name] = overrides[key.name], "argument", 0
        elif key.env in environ:
            raw, where, levels[key.name] = environ[key.env], f"environment variable {key.env}", 1
        else:
            for level, (path, doc) in enumerate(docs, start=2):
                if key.name in doc:
                    raw, where, levels[key.name] = doc[key.name], f"config file {path}", level
                    break
            else:
                values[key.name], sources[key.name] = key.default(), "default"
                levels[key.name] = len(docs) + 2
                continue
        try:
            values[key.name] = key.parse(raw)
        except ValueError as exc:
            raise UsageError(f"configuration key {key.name!r} from {where}: {exc} (got {raw!r})") from None
        sources[key.name] = where
    # channel and release are one choice ("follow this channel" or "pin this release") made at
    # one level: a channel chosen above a lower level's pin (`--channel testing` with
    # DEPOTDELIVERY_RELEASE set) unpins; within one level the pin wins.
    if values["release"] is not None and levels["channel"] < levels["release"]:
        values["release"] = None
        sources["release"] = f"unset by channel from {sources['channel']}"
    return Config(**values, sources=sources)
