"""What a repository's storage preserves: the ``storage`` record of ``depotdelivery-repo.json``,
and the rules readers (verify, listings, repo-gc) apply because of it.

A CernVM-FS catalog keeps a file's mtime in whole seconds (the catalog's "Last Modified"
column, cvmfs/doc-cvmfs cpt-details.rst "File Catalog"); nanoseconds only when the repository
sets ``CVMFS_ENABLE_MTIME_NS=true`` (cvmfs PR 3513, catalog schema revision 7; doc-cvmfs
apx-parameters "CVMFS_ENABLE_MTIME_NS", off by default) and the client supports statx. The
record says so in the repository itself, so every reader of any copy of it compares mtimes at
the precision the storage really has -- never coarser than it must.
"""
from __future__ import annotations

from depotdelivery._record import record
from depotdelivery.errors import UsageError
from depotdelivery.store.fields import Fields

__all__ = ["CVMFS_MAGIC", "POSIX", "STORAGE_NAMES", "Storage", "is_magic", "storage_named"]

_SECOND = 1_000_000_000
_KINDS = ("posix", "cvmfs")

# Names CernVM-FS gives a meaning to inside a repository: nested catalog markers (manual and
# CVMFS_AUTOCATALOGS ones), the root's .cvmfsdirtab, and bundle specifications (doc-cvmfs
# cpt-repo "Managing Nested Catalogs", "Automatic Management of Nested Catalogs"). The
# publisher lays .cvmfscatalog markers itself; none of them is release content.
CVMFS_MAGIC = frozenset({".cvmfscatalog", ".cvmfsautocatalog", ".cvmfsdirtab", ".cvmfsbundles"})


@record(kw_only=True)
class Storage:
    """``kind``: ``posix`` (a directory that keeps what it is given) or ``cvmfs``;
    ``mtime_resolution_ns``: the mtime granularity readers see (1: exact; 10**9: whole seconds,
    as a CVMFS client shows them unless the repository stores nanoseconds)."""

    kind: str = "posix"
    mtime_resolution_ns: int = 1

    @classmethod
    def from_dict(cls, obj: object, where: str) -> Storage:
        f = Fields(obj, where, "storage")
        f.only(frozenset({"kind", "mtime_resolution_ns"}))
        kind = f.str("kind")
        if kind not in _KINDS:
            raise f.error("kind", f"expected one of {', '.join(_KINDS)}, got {kind!r}")
        res = f.int("mtime_resolution_ns", minimum=1)
        if _SECOND % res:
            raise f.error("mtime_resolution_ns", f"must divide 10**9 (1 ns ... 1 s), got {res}")
        return cls(kind=kind, mtime_resolution_ns=res)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "mtime_resolution_ns": self.mtime_resolution_ns}

    @property
    def name(self) -> str:
        """The ``--storage`` name of this record (or a description for an unnamed one)."""
        for n, s in STORAGE_NAMES.items():
            if s == self:
                return n
        return f"{self.kind} ({self.mtime_resolution_ns} ns mtimes)"

    def mtime_matches(self, listed_ns: int, actual_ns: int) -> bool:
        """Whether a file showing ``actual_ns`` keeps the listed mtime: exactly, or (coarse
        storage) the listed mtime rounded down to the storage's granularity, as CVMFS stores
        ``st_mtime`` -- the seconds of a timespec, i.e. floor, also before 1970."""
        if actual_ns == listed_ns:
            return True
        res = self.mtime_resolution_ns
        return res > 1 and actual_ns == listed_ns // res * res

    def mtime_note(self) -> str:
        if self.mtime_resolution_ns == 1:
            return "compared exactly"
        return f"compared at the storage's {self.mtime_resolution_ns} ns granularity"


POSIX = Storage()  # a directory that keeps what it is given: the default

STORAGE_NAMES: dict[str, Storage] = {
    "posix": POSIX,
    "cvmfs": Storage(kind="cvmfs", mtime_resolution_ns=_SECOND),
    # CVMFS_ENABLE_MTIME_NS=true: the catalog keeps nanoseconds (clients without statx
    # support still show whole seconds: verify from such a client reports them)
    "cvmfs-mtime-ns": Storage(kind="cvmfs", mtime_resolution_ns=1),
}


def storage_named(name: str) -> Storage:
    try:
        return STORAGE_NAMES[name]
    except KeyError:
        raise UsageError(f"unknown storage {name!r}: expected one of {', '.join(STORAGE_NAMES)}") from None


def is_magic(name: str) -> bool:
    """Whether a directory entry called ``name`` is one CVMFS gives a meaning to (see
    :data:`CVMFS_MAGIC`): readers skip it where it is not part of a listing."""
    return name in CVMFS_MAGIC
