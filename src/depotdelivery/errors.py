"""The exception hierarchy: one root, one subclass per failure class, each with its CLI exit code.

Every subclass also inherits the fitting built-in (archspec's
``UnsupportedMicroarchitecture(ArchspecError, ValueError)`` pattern), so callers that only
know the built-ins still catch the right things. Messages are one line and say what failed,
where, and what to do; the CLI prints ``depotdelivery: <message>`` and exits with
``exit_code`` (documented in docs/troubleshooting.md).
"""
from __future__ import annotations

__all__ = [
    "EXIT_CODES",
    "BuildError",
    "CacheError",
    "ConflictError",
    "DepotDeliveryError",
    "FormatError",
    "InputError",
    "IntegrityError",
    "JuliaOutputError",
    "LockTimeoutError",
    "ModuleGraphMismatchError",
    "NoCompatibleVariantError",
    "NotFoundError",
    "OutputError",
    "PredictionMismatchError",
    "PublishError",
    "RepositoryUnavailableError",
    "TrustError",
    "UnsupportedError",
    "UsageError",
]


class DepotDeliveryError(Exception):
    """Root of every error depotdelivery raises on purpose."""

    exit_code: int = 1


class UsageError(DepotDeliveryError, ValueError):
    """Bad command-line usage or a bad argument value (exit 2)."""

    exit_code = 2


class InputError(UsageError):
    """A user-supplied input file is malformed (``--cpuinfo``, ``--cpuid-dump``, a key file, ...)."""


class RepositoryUnavailableError(DepotDeliveryError, OSError):
    """The repository root is missing, unmounted or not a depotdelivery repository (exit 3)."""

    exit_code = 3


class NotFoundError(DepotDeliveryError, LookupError):
    """A release, channel or variant named by the user does not exist (exit 3)."""

    exit_code = 3


class IntegrityError(DepotDeliveryError, ValueError):
    """Published bytes do not match what was signed: hash, size, mode, listing (exit 4)."""

    exit_code = 4


class FormatError(IntegrityError):
    """A file in one of the formats we read (repository documents, Julia cache files, ELF
    images) is malformed, truncated, or of an unknown version. Messages name the file and
    the byte offset or field."""


class TrustError(DepotDeliveryError, PermissionError):
    """Signature missing, by an unknown or revoked key, a channel downgrade (rollback
    attack) or an expired channel (freeze attack) (exit 5)."""

    exit_code = 5


class NoCompatibleVariantError(DepotDeliveryError, LookupError):
    """No published variant has a sysimage Julia would accept on this host (exit 6)."""

    exit_code = 6


class LockTimeoutError(DepotDeliveryError, TimeoutError):
    """Another process held a hydration lock for longer than the configured timeout (exit 7)."""

    exit_code = 7


class CacheError(DepotDeliveryError, OSError):
    """The node cache cannot be used: unwritable, full (ENOSPC), no working ``flock`` (exit 8)."""

    exit_code = 8


class PublishError(DepotDeliveryError, RuntimeError):
    """Publishing failed (unwritable or full repository, CVMFS transaction failure); the
    repository was left as it was (exit 9)."""

    exit_code = 9


class ConflictError(PublishError):
    """Different content under an existing release name/version: releases are immutable."""


class UnsupportedError(DepotDeliveryError, NotImplementedError):
    """A capability this host lacks (FUSE for the overlay mode, ...) (exit 10)."""

    exit_code = 10


class PredictionMismatchError(DepotDeliveryError, AssertionError):
    """``check --julia``: the Julia that ran disagrees with depotdelivery's prediction (exit 11)."""

    exit_code = 11


class ModuleGraphMismatchError(DepotDeliveryError, AssertionError):
    """``check``: this node's module graph differs from every CI reference fingerprint (exit 12)."""

    exit_code = 12


class JuliaOutputError(DepotDeliveryError, RuntimeError):
    """``check --julia``: Julia did not finish the check (timeout, crash) or printed loading
    output depotdelivery does not understand, so nothing was compared (exit 13)."""

    exit_code = 13


class BuildError(DepotDeliveryError, RuntimeError):
    """``build`` failed: a Julia step exited non-zero or did not write what it must; the
    message names the variant and the step and the kept log; nothing was published (exit 14)."""

    exit_code = 14


class OutputError(DepotDeliveryError, OSError):
    """The command's output could not be written: stdout closed, a full disk, an I/O error
    (exit 15). Nothing else about the command failed, but its output is lost or partial."""

    exit_code = 15


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (please report it with the traceback from --debug)",
    2: "usage error or malformed input file",
    3: "repository unavailable, or release/channel not found",
    4: "integrity or format failure (hash, size, listing, malformed document)",
    5: "trust failure (signature, unknown/revoked key, channel downgrade or expiry)",
    6: "no compatible variant for this host",
    7: "lock timeout",
    8: "node cache unusable (unwritable, full, no flock)",
    9: "publish failed (conflict, unwritable/full repository, CVMFS transaction)",
    10: "unsupported on this host (e.g. FUSE unavailable for overlay mode)",
    11: "check --julia: Julia disagrees with the prediction (the JSON report names every mismatch)",
    12: "check: the module graph differs from the CI reference fingerprint(s) of the variant",
    13: "check --julia: Julia timed out, crashed, or printed loading output depotdelivery does not understand",
    14: "build failed (a Julia step failed or wrote nothing; see the log it names)",
    15: "cannot write output (stdout closed, disk full, I/O error)",
}
