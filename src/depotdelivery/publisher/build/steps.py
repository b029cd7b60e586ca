"""One build step: a generated script run by a fresh Julia process, with an exact environment,
its output in a log file, its command, environment and timing recorded; a failure names the
variant and the step and points at the kept log."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from depotdelivery.errors import BuildError

__all__ = ["Cancelled", "StepResult", "base_environment", "run_step"]

# Inherited JULIA_* variables that configure how Julia reaches the network or a compiler, not
# what it builds; every other JULIA_* of the calling shell is dropped so that the build
# depends only on what build sets (JULIA_DEPOT_PATH, JULIA_PROJECT, JULIA_CPU_TARGET, ...).
_JULIA_PASS = frozenset({"JULIA_PKG_SERVER", "JULIA_PKG_USE_CLI_GIT", "JULIA_SSL_CA_ROOTS_PATH",
                         "JULIA_SSL_NO_VERIFY_HOSTS", "JULIA_PKG_SERVER_REGISTRY_PREFERENCE", "JULIA_CC",
                         "JULIA_NUM_PRECOMPILE_TASKS"})
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|_KEY$|^KEY$", re.IGNORECASE)
_LOG_TAIL = 5  # lines of a failed step's log quoted in the error


class Cancelled(BuildError):
    """Another variant failed: this step was stopped (its process terminated)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """What the record keeps of one step."""

    step: str
    argv: tuple[str, ...]
    env: Mapping[str, str]  # the exact environment, secrets redacted
    script: str  # path of the script, relative to the record directory
    log: str
    seconds: float
    exit_code: int

    def to_dict(self) -> dict[str, object]:
        return {"step": self.step, "argv": list(self.argv), "env": dict(self.env), "script": self.script,
                "log": self.log, "seconds": round(self.seconds, 3), "exit_code": self.exit_code}


def base_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without JULIA_* (but the network/compiler ones, _JULIA_PASS)."""
    env = dict(os.environ if environ is None else environ)
    return {k: v for k, v in env.items() if not k.startswith("JULIA_") or k in _JULIA_PASS}


def redacted(env: Mapping[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if _SECRET.search(k) else v) for k, v in sorted(env.items())}


def run_step(*, where: str, step: str, julia: str, script: str, script_path: Path, log_path: Path,
             env: Mapping[str, str], julia_args: Sequence[str] = (), cancel: threading.Event | None = None,
             on_start: Callable[[], None] | None = None) -> StepResult:
    """Write ``script`` to ``script_path``, run ``julia [julia_args] script_path`` with exactly
    ``env`` (stdin closed, output to ``log_path``). ``where``: "variant haswell" or "shared
    depot", for messages. A non-zero exit raises BuildError naming the step and the log; a set
    ``cancel`` terminates the process (its whole process group) and raises Cancelled."""
    script_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    script_path.write_text(script, encoding="utf-8")
    argv = (julia, "--startup-file=no", "--history-file=no", *julia_args, str(script_path))
    if on_start is not None:
        on_start()
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise BuildError(f"{where}, step {step}: cannot run {julia}: {exc.strerror} "
                             "(pass --julia PATH to the julia binary)") from None
        code = _wait(proc, cancel)
    seconds = time.monotonic() - t0
    if code is None:
        raise Cancelled(f"{where}, step {step}: stopped because another step failed (log: {log_path})")
    if code != 0:
        raise BuildError(f"{where}, step {step}: julia exited with {_describe(code)}{_tail(log_path)} "
                         f"(full log: {log_path})")
    return StepResult(step=step, argv=argv, env=redacted(env), script=script_path.name, log=log_path.name,
                      seconds=seconds, exit_code=code)


def _wait(proc: subprocess.Popen[bytes], cancel: threading.Event | None) -> int | None:
    """The exit code, or None when ``cancel`` was set first. The process runs in its own
    session (a terminal's Ctrl-C does not reach it): on cancel, or on any exception here
    (KeyboardInterrupt), its whole process group is ended before returning."""
    try:
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    _end(proc)
                    return None
    except BaseException:
        _end(proc)
        raise


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after a grace period."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


def _tail(log_path: Path) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines()[1:] if ln.strip()]
    except OSError:
        return ""
    return f": {' | '.join(lines[-_LOG_TAIL:])}" if lines else ""
