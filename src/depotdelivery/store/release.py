"""``release.json`` records: the release, its shared tree and per-microarchitecture variants."""
from __future__ import annotations

from depotdelivery._record import field, record
from depotdelivery.errors import NotFoundError
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fields import (
    FORMAT,
    Fields,
    check_format,
    is_hex,
    load_canonical,
)
from depotdelivery.store.hashing import hash_bytes

TYPE_CHECKING = False  # no `typing` on a job's cold path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from depotdelivery.store.fingerprint import Fingerprint

__all__ = [
    "ARCHES",
    "CLONES_SOURCES",
    "Clone",
    "Release",
    "SysimageModule",
    "SysimageRef",
    "Tree",
    "Variant",
]

ARCHES = ("x86_64", "aarch64")
# "image": read from the sysimage's clone-target data (what Julia itself matches);
# "approximate": derived from the JULIA_CPU_TARGET string / target name without an image.
CLONES_SOURCES = ("image", "approximate")
_SUFFIX = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-")


def is_julia_version(text: str) -> bool:
    """``\\d+\\.\\d+(\\.\\d+)?([-+][0-9A-Za-z.+-]+)?`` (``\\d``: any Unicode decimal digit, as
    ``re`` reads it): 1.11, 1.11.1, 1.12.0-beta1, 1.10.4+0.x86_64."""
    i = min((j for j in (text.find("-"), text.find("+")) if j >= 0), default=len(text))
    numbers, suffix = text[:i], text[i + 1:]
    parts = numbers.split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdecimal() for p in parts):
        return False
    return i == len(text) or (bool(suffix) and _SUFFIX.issuperset(suffix))


def is_uuid(text: str) -> bool:
    """A lowercase hyphenated UUID (8-4-4-4-12 hex digits)."""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(is_hex(p) for p in parts)


def _rel_path(f: Fields, key: str, *, under: str | None = None) -> str:
    value: str = f.str(key)
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in value:
        raise f.error(key, f"unsafe path {value!r}")
    if under is not None and not value.startswith(under + "/"):
        raise f.error(key, f"{value!r} is not inside {under!r}")
    return value


@record(kw_only=True)
class Tree:
    """A directory of the release: where it is, the BLAKE3 of its listing, its size."""

    path: str
    tree: str
    files: int
    bytes: int

    @classmethod
    def _from_fields(cls, f: Fields) -> Tree:
        return cls(path=_rel_path(f, "path"), tree=f.hex64("tree"),
                   files=f.int("files", minimum=0), bytes=f.int("bytes", minimum=0))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "tree": self.tree, "files": self.files, "bytes": self.bytes}


@record(kw_only=True)
class SysimageRef:
    """The variant's system image: path relative to the release directory, BLAKE3, size."""

    path: str
    blake3: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "blake3": self.blake3, "size": self.size}


@record(kw_only=True)
class Clone:
    """One clone target of a sysimage, as Julia stores it, plus its enabled feature names."""

    name: str
    flags: int
    en: tuple[int, ...]
    dis: tuple[int, ...]
    features: tuple[str, ...]
    ext: str = ""

    @classmethod
    def _from_fields(cls, f: Fields) -> Clone:
        f.only(frozenset({"name", "flags", "en", "dis", "features", "ext"}))
        return cls(name=f.str("name"), flags=f.int("flags", minimum=0), en=f.int_list("en"),
                   dis=f.int_list("dis"), features=f.str_list("features"), ext=f.str("ext"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flags": self.flags, "en": list(self.en), "dis": list(self.dis),
                "features": list(self.features), "ext": self.ext}


def _target_lists(f: Fields, key: str) -> tuple[tuple[Clone, ...], ...]:
    """An optional list of non-empty clone-target lists (absent: none)."""
    if key not in f.obj:
        return ()
    out = []
    for i, targets in enumerate(f.list(key)):
        if not isinstance(targets, list) or not targets:
            raise f.error(f"{key}[{i}]", "expected a non-empty list of clone targets")
        out.append(tuple(Clone._from_fields(Fields(c, f.where, f._dotted(f"{key}[{i}][{j}]")))
                         for j, c in enumerate(targets)))
    return tuple(out)


@record(kw_only=True)
class SysimageModule:
    """A module compiled into the sysimage; caches record its build id as a dependency."""

    name: str
    uuid: str
    build_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uuid": self.uuid, "build_id": self.build_id}


@record(kw_only=True)
class Variant:
    """The per-microarchitecture part of a release: sysimage + its precompiled caches."""

    target: str
    arch: str
    cpu_target: str
    path: str
    tree: str
    files: int
    bytes: int
    sysimage: SysimageRef | None
    clones: tuple[Clone, ...]
    clones_source: str
    sysimage_modules: tuple[SysimageModule, ...] = ()
    # The distinct clone-target lists of the variant's pkgimages (usually one); empty when it
    # has none or the document predates the field (then it is absent from release.json).
    pkgimage_targets: tuple[tuple[Clone, ...], ...] = ()
    # The module-graph fingerprints of the CI reference host(s) (``publish --fingerprint``),
    # signed with the release; empty (and absent from release.json) when none was recorded.
    fingerprints: tuple[Fingerprint, ...] = ()

    @property
    def as_tree(self) -> Tree:
        return Tree(path=self.path, tree=self.tree, files=self.files, bytes=self.bytes)

    @classmethod
    def _from_fields(cls, f: Fields) -> Variant:
        f.only(frozenset({"target", "arch", "cpu_target", "path", "tree", "files", "bytes", "sysimage",
                          "clones", "clones_source", "sysimage_modules", "pkgimage_targets", "fingerprints"}))
        target = f.name("target")
        arch = f.str("arch")
        if arch not in ARCHES:
            raise f.error("arch", f"expected one of {', '.join(ARCHES)}, got {arch!r}")
        path = _rel_path(f, "path")
        if path != f"variants/{target}":
            raise f.error("path", f"expected 'variants/{target}', got {path!r}")
        source = f.str("clones_source")
        if source not in CLONES_SOURCES:
            raise f.error("clones_source", f"expected one of {', '.join(CLONES_SOURCES)}, got {source!r}")
        si = f.sub("sysimage", optional=True)
        sysimage = None if si is None else SysimageRef(
            path=_rel_path(si, "path", under=path), blake3=si.hex64("blake3"), size=si.int("size", minimum=0))
        modules = tuple(
            SysimageModule(name=m.str("name"), uuid=m.str("uuid", valid=is_uuid), build_id=m.str("build_id", valid=is_hex))
            for m in f.subs("sysimage_modules"))
        return cls(target=target, arch=arch, cpu_target=f.str("cpu_target"), path=path, tree=f.hex64("tree"),
                   files=f.int("files", minimum=0), bytes=f.int("bytes", minimum=0), sysimage=sysimage,
                   clones=tuple(Clone._from_fields(c) for c in f.subs("clones")), clones_source=source,
                   sysimage_modules=modules, pkgimage_targets=_target_lists(f, "pkgimage_targets"),
                   fingerprints=_fingerprints(f))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target, "arch": self.arch, "cpu_target": self.cpu_target, "path": self.path,
            "tree": self.tree, "files": self.files, "bytes": self.bytes,
            "sysimage": None if self.sysimage is None else self.sysimage.to_dict(),
            "clones": [c.to_dict() for c in self.clones], "clones_source": self.clones_source,
            "sysimage_modules": [m.to_dict() for m in self.sysimage_modules],
        } | ({"pkgimage_targets": [[c.to_dict() for c in lst] for lst in self.pkgimage_targets]}
             if self.pkgimage_targets else {}) | ({"fingerprints": [fp.to_dict() for fp in self.fingerprints]}
                                                  if self.fingerprints else {})


def _fingerprints(f: Fields) -> tuple[Fingerprint, ...]:
    """The optional ``fingerprints`` list (absent: none); each is checked against its own hash."""
    if "fingerprints" not in f.obj:
        return ()
    from depotdelivery.store.fingerprint import (
        parse as parse_fingerprint,  # only releases that record them
    )

    return tuple(parse_fingerprint(obj, where=f.where, path=f._dotted(f"fingerprints[{i}]"))
                 for i, obj in enumerate(f.list("fingerprints")))


@record(kw_only=True)
class Release:
    """A parsed ``release.json``. ``id`` is the BLAKE3 of its canonical bytes (``raw``);
    ``sig_raw`` is the ``release.json.sig`` read beside it (None when not read), kept so a node
    can remember that it already verified exactly these bytes."""

    name: str
    version: str
    julia_version: str
    project: str
    shared: Tree
    variants: tuple[Variant, ...]
    id: str = field(default="", compare=False)
    raw: bytes = field(default=b"", compare=False, repr=False)
    sig_raw: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def ref(self) -> str:
        """``name/version``, how users and channels name a release."""
        return f"{self.name}/{self.version}"

    def variant(self, target: str) -> Variant:
        for v in self.variants:
            if v.target == target:
                return v
        known = ", ".join(v.target for v in self.variants) or "none"
        raise NotFoundError(f"release {self.ref} has no variant {target!r} (variants: {known})")

    def trees(self) -> tuple[Tree, ...]:
        """The shared tree then each variant's, in document order."""
        return (self.shared, *(v.as_tree for v in self.variants))

    @classmethod
    def from_dict(cls, obj: Any, *, where: str) -> Release:
        f = Fields(obj, where)
        check_format(f)
        f.only(frozenset({"format", "name", "version", "julia_version", "project", "shared", "variants"}))
        shared_f = f.sub("shared")
        assert shared_f is not None
        shared_f.only(frozenset({"path", "tree", "files", "bytes"}))
        shared = Tree._from_fields(shared_f)
        if shared.path != "depot":
            raise shared_f.error("path", f"expected 'depot', got {shared.path!r}")
        variants = tuple(Variant._from_fields(v) for v in f.subs("variants"))
        seen: set[str] = set()
        for i, v in enumerate(variants):
            if v.target in seen:
                raise f.error(f"variants[{i}].target", f"duplicate variant {v.target!r}")
            seen.add(v.target)
        return cls(name=f.name("name"), version=f.name("version"),
                   julia_version=f.str("julia_version", valid=is_julia_version),
                   project=_rel_path(f, "project"), shared=shared, variants=variants)

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str, sig_raw: bytes | None = None) -> Release:
        """Parse canonical ``release.json`` bytes; the result carries ``id``, ``raw``, ``sig_raw``."""
        parsed = cls.from_dict(load_canonical(raw, where), where=where)
        return cls._with_raw(parsed, raw, sig_raw)

    @classmethod
    def _with_raw(cls, r: Release, raw: bytes, sig_raw: bytes | None) -> Release:
        return cls(name=r.name, version=r.version, julia_version=r.julia_version, project=r.project,
                   shared=r.shared, variants=r.variants, id=hash_bytes(raw), raw=raw, sig_raw=sig_raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "version": self.version, "julia_version": self.julia_version,
            "project": self.project, "shared": self.shared.to_dict(),
            "variants": [v.to_dict() for v in self.variants],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())

    def sealed(self) -> Release:
        """This release with ``raw`` and ``id`` filled from its canonical bytes (publisher side)."""
        return self._with_raw(self, self.to_bytes(), self.sig_raw)

