"""What a job gets from prepare(): :class:`Prepared` (the environment, Julia's arguments, the
lease), and how to hand it to Julia: argv insertion, shell statements for ``eval``."""
from __future__ import annotations

import os

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from depotdelivery.node.locks import Lease
    from depotdelivery.node.session import Session

__all__ = ["SHELLS", "Prepared", "julia_index", "names_sysimage", "render_env", "shell_quote"]


class Prepared:
    """A ready depot stack for one job: the environment and Julia arguments that use it.

    Holds the job's lease (an open, inheritable flock-ed descriptor) for as long as this
    process, or a process it ``exec``s, runs, and the :class:`~depotdelivery.node.session.Session`
    it came from (``session.release()``: the verified release, ``session.host()``: the CPU it was
    selected for; each loaded once). (A plain slotted class: ``dataclasses`` costs more to
    import than a warm prepare() takes.)"""

    __slots__ = (
        "depot",
        "depot_path",
        "env",
        "hydrated",
        "julia_args",
        "key",
        "lease",
        "mode",
        "release",
        "release_id",
        "session",
        "timings",
        "variant",
        "warnings",
        "why",
    )

    def __init__(self, *, depot_path: tuple[str, ...], env: dict[str, str], julia_args: tuple[str, ...],
                 release: str, release_id: str, variant: str, mode: str, key: str, depot: str, why: str,
                 hydrated: bool, warnings: tuple[str, ...] = (), timings: dict[str, float] | None = None,
                 lease: Lease | None = None, session: Session | None = None) -> None:
        self.depot_path = depot_path
        self.env = env  # JULIA_DEPOT_PATH, JULIA_PROJECT, JULIA_PKG_OFFLINE, JULIA_CPU_TARGET, ...
        self.julia_args = julia_args  # ("--sysimage", path)
        self.release = release  # NAME/VERSION
        self.release_id = release_id
        self.variant = variant
        self.mode = mode
        self.key = key
        self.depot = depot  # the writable first depot
        self.why = why
        self.hydrated = hydrated  # True if this call built the depot
        self.warnings = warnings
        self.timings = {} if timings is None else timings  # milliseconds per phase
        self.lease = lease
        self.session = session

    def __repr__(self) -> str:
        return f"Prepared(release={self.release!r}, variant={self.variant!r}, mode={self.mode!r}, depot={self.depot!r})"

    def apply(self) -> None:
        """Export :attr:`env` into ``os.environ`` (for code that starts Julia itself)."""
        os.environ.update(self.env)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` with :attr:`julia_args` inserted right after the first ``julia``
        executable (``srun julia x.jl`` works too), unless it already names a sysimage."""
        out = list(argv)
        i = julia_index(out)
        if i is None or not self.julia_args or names_sysimage(out[i + 1:]):
            return out
        return out[: i + 1] + list(self.julia_args) + out[i + 1:]

    def to_dict(self) -> dict[str, Any]:
        return {"depot_path": list(self.depot_path), "env": dict(self.env), "julia_args": list(self.julia_args),
                "release": self.release, "release_id": self.release_id, "variant": self.variant,
                "mode": self.mode, "key": self.key, "depot": self.depot, "why": self.why,
                "hydrated": self.hydrated, "warnings": list(self.warnings), "timings": dict(self.timings),
                "lease": None if self.lease is None else str(self.lease.path)}


def julia_index(argv: Sequence[str]) -> int | None:
    """Index of the first argument naming a Julia executable (``julia``, ``julia-1.11``, a path)."""
    for i, arg in enumerate(argv):
        base = os.path.basename(arg)
        if base == "julia" or (base.startswith("julia-") and base[6:7].isdigit()):
            return i
    return None


# Julia's options that take a value, as its getopt_long sees them (src/jloptions.c, v1.12:
# shortopts "+vhqH:e:E:L:J:C:it:p:O:g:m:" and the required_argument long options). Optional
# ones (--project, --optimize, --code-coverage, ...) only take a value after '='.
_SHORT_WITH_VALUE = frozenset("HeELJCtpOgm")
_LONG_WITH_VALUE = frozenset({
    "banner", "home", "eval", "module", "print", "load", "bug-report", "sysimage", "sysimage-native-code",
    "compiled-modules", "pkgimages", "cpu-target", "procs", "threads", "gcthreads", "machine-file", "color",
    "history-file", "startup-file", "compile", "check-bounds", "output-bc", "output-unopt-bc", "output-o",
    "output-asm", "output-ji", "output-incremental", "depwarn", "warn-overwrite", "warn-scope", "inline",
    "polly", "trace-compile", "math-mode", "handle-signals", "bind-to", "permalloc-pkgimg", "heap-size-hint",
})


def names_sysimage(args: Sequence[str]) -> bool:
    """Whether Julia's own options in ``args`` (what follows the executable) name a sysimage
    (``-J``/``--sysimage``). Like Julia's option parser ("+": no permutation) it stops at the
    program file, at ``--`` and after ``-m``/``--module``, and skips options' values, so
    ``julia x.jl --sysimage y`` (arguments of x.jl) or ``julia -e '-J'`` name none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or arg == "-" or not arg.startswith("-"):
            return False
        if arg.startswith("--"):
            name, eq, _value = arg[2:].partition("=")
            if name == "sysimage":
                return True
            if name == "module":
                return False
            i += name in _LONG_WITH_VALUE and not eq  # the value is the next argument
        else:
            for j, c in enumerate(arg[1:], 2):  # bundled short options: -qJ x, -qJx
                if c in _SHORT_WITH_VALUE:
                    if c == "J":
                        return True
                    if c == "m":
                        return False
                    i += j == len(arg)  # nothing attached: the value is the next argument
                    break
        i += 1
    return False


SHELLS = ("sh", "csh", "fish", "json")
# shlex.quote's rule without shlex (which imports re): these characters need no quoting
_SHELL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")


def shell_quote(value: str) -> str:
    """``shlex.quote(value)``: the value as one POSIX shell word."""
    if not value:
        return "''"
    if _SHELL_SAFE.issuperset(value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def render_env(env: dict[str, str], shell: str) -> str:
    """``env`` as statements for ``eval`` in ``shell`` (or one JSON object)."""
    if shell == "json":
        from depotdelivery.store import fastjson

        return fastjson.dumps(env) + "\n"
    lines = []
    for name, value in sorted(env.items()):
        if shell == "sh":
            lines.append(f"export {name}={shell_quote(value)};")
        elif shell == "csh":
            # csh has no escape inside single quotes; '!' needs a backslash even there
            quoted = "'" + value.replace("'", "'\\''").replace("!", "\\!") + "'"
            lines.append(f"setenv {name} {quoted};")
        elif shell == "fish":
            quoted = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
            lines.append(f"set -gx {name} {quoted};")
        else:
            from depotdelivery.errors import UsageError

            raise UsageError(f"unknown shell {shell!r} (expected one of {', '.join(SHELLS)})")
    return "\n".join(lines) + "\n"
