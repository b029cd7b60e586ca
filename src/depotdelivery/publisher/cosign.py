"""Co-signing: add signatures to a published release's or channel's ``.sig``, never changing the document."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import UsageError
from depotdelivery.publisher.channels import repository_lock
from depotdelivery.store.atomic import write_atomic
from depotdelivery.store.fields import split_ref
from depotdelivery.store.keys import (
    PrivateKey,
    Signature,
    encode_signatures,
    parse_signatures,
    raw_public_key,
    signature_valid,
    signing_keys,
)
from depotdelivery.store.repo import Repository

if TYPE_CHECKING:
    from depotdelivery.store.channel import Channel
    from depotdelivery.store.release import Release

__all__ = ["CoSigned", "cosign"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CoSigned:
    """What :func:`cosign` did: the ``.sig`` it extended, the key ids it added, those whose valid
    signature was there already (nothing written for them), and the signatures the file holds."""

    subject: str  # "release N/V" or "channel C"
    sig_path: Path
    added: tuple[str, ...]
    already: tuple[str, ...]
    signatures: int

    def to_dict(self) -> dict[str, object]:
        return {"subject": self.subject, "sig": str(self.sig_path), "added": list(self.added),
                "already_signed": list(self.already), "signatures": self.signatures}


def cosign(root: str | Path, key: PrivateKey | Sequence[PrivateKey], *, release: str | None = None,
           channel: str | None = None, cvmfs: str | None = None) -> CoSigned:
    """Add ``key``'s signature (one key or several) over release ``release`` ("N/V")'s
    ``release.json`` or channel ``channel``'s document to its ``.sig``, so nodes whose
    trusted-keys directory requires a threshold of several keys accept it.

    Idempotent: a key with a valid signature there already adds nothing, and when no key adds
    anything nothing is written (no CVMFS transaction is opened). The document's bytes never
    change; the ``.sig`` is replaced atomically, under the repository lock every channel update
    holds (``channels.repository_lock``), inside a CVMFS transaction with ``cvmfs``. Every
    signature already in the ``.sig`` is kept (another key's, or a channel's signature over its
    previous document for readers racing the last update).
    """
    if (release is None) == (channel is None):
        raise UsageError("co-signing needs exactly one of a release (NAME/VERSION) or a channel")
    keys = signing_keys(key)
    repo = Repository.open(root)
    if cvmfs is not None:
        before, _ = _plan(repo, keys, release, channel)  # a missing document fails before any transaction
        if not before.added:
            return before  # already signed: no transaction for nothing
    with repository_lock(repo.root, cvmfs, tag=f"sign-{release or channel}",
                         message="depotdelivery: co-sign") as commit:
        # read again under the lock: a channel update or repo-gc that ran since would otherwise
        # get its .sig replaced by one for the document it replaced
        done, sig = _plan(repo, keys, release, channel)
        if sig is not None:
            write_atomic(done.sig_path, sig)
        if commit is not None:
            commit.message = f"depotdelivery: co-sign {done.subject} by {', '.join(done.added) or 'nobody new'}"
    return done


def _plan(repo: Repository, keys: tuple[PrivateKey, ...], release: str | None,
          channel: str | None) -> tuple[CoSigned, bytes | None]:
    """Read the document and its ``.sig``; return what co-signing does and the new ``.sig``
    bytes (None: every key has signed already)."""
    doc: Release | Channel
    if release is not None:
        name, version = split_ref(release)
        doc = repo.read_release(name, version)  # parsed: a missing or malformed release is refused here
        sig_path = repo.release_dir(name, version) / "release.json.sig"
        subject = f"release {doc.ref}"
    else:
        assert channel is not None
        doc = repo.read_channel(channel, check_expiry=False)
        path = repo.channel_path(channel)
        sig_path = path.with_name(path.name + ".sig")
        subject = f"channel {channel}"
    old = () if doc.sig_raw is None else parse_signatures(doc.sig_raw, where=str(sig_path))
    added: list[Signature] = []
    already: list[str] = []
    for k in keys:
        public = raw_public_key(k.key.public_key())
        if any(s.keyid == k.keyid and signature_valid(public, s.sig, doc.raw) for s in old):
            already.append(k.keyid)
        else:
            added.append(Signature(k.keyid, k.key.sign(doc.raw)))
    done = CoSigned(subject=subject, sig_path=sig_path, added=tuple(s.keyid for s in added), already=tuple(already),
                    signatures=len(old) + len(added))
    return done, encode_signatures([*old, *added]) if added else None
