"""Publisher-side channel operations: set, rollback (a new document pointing back), history, expiry durations."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from depotdelivery.errors import NotFoundError, UsageError
from depotdelivery.store.atomic import (
    dir_lock,
    dir_times_restored_on_error,
    write_atomic,
)
from depotdelivery.store.channel import Channel, ChannelEntry, format_time
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
from depotdelivery.store.release import Release
from depotdelivery.store.repo import Repository

if TYPE_CHECKING:
    from depotdelivery.publisher.cvmfs import Commit

__all__ = [
    "DEFAULT_EXPIRY",
    "channel_history",
    "repository_lock",
    "rollback_channel",
    "set_channel",
]

# A channel must be re-signed before this runs out, or nodes refuse it (freeze attack);
# long enough that a quiet quarter does not take a cluster down.
DEFAULT_EXPIRY = 90 * 86400.0


def _current(repo: Repository, channel: str) -> Channel | None:
    try:
        return repo.read_channel(channel, check_expiry=False)
    except NotFoundError:
        return None


def _write(repo: Repository, doc: Channel, keys: tuple[PrivateKey, ...], old: Channel | None) -> Channel:
    """Write ``.sig`` first, then the document. The new ``.sig`` also holds every signing key's
    signature over the old document, so a reader between the two renames (old document, new
    ``.sig``) still verifies (docs/architecture.md), with as many keys as the new document has:
    a trusted key's signature matching neither would be refused as tampering
    (store.keys.TrustStore.signers). The old document is signed only when one of ``keys``
    already signed it: an old document no key of ours vouches for (a key rotation, or one
    modified in the repository) is never given a signature."""
    raw = doc.to_bytes()
    sigs = [Signature(k.keyid, k.key.sign(raw)) for k in keys]
    if old is not None and old.sig_raw is not None and _signed_by_any(old, keys):
        # Ed25519 is deterministic: a key's earlier signature over the old document is this one
        sigs += [Signature(k.keyid, k.key.sign(old.raw)) for k in keys]
    path = repo.channel_path(doc.channel)
    with dir_times_restored_on_error(repo.root, path.parent):
        made_dir = not path.parent.exists()
        if made_dir:
            path.parent.mkdir()
        if repo.storage.kind == "cvmfs":
            from depotdelivery.publisher.cvmfs import lay_catalog_marker

            lay_catalog_marker(path.parent)  # channels/: a tiny catalog of its own (see there)
        sig_path = path.with_name(path.name + ".sig")
        try:
            write_atomic(sig_path, encode_signatures(sigs))
            write_atomic(path, raw)
        except BaseException:
            # put the old .sig back (or remove ours): a failed update leaves no trace
            if old is not None and old.sig_raw is not None:
                write_atomic(sig_path, old.sig_raw)
            else:
                sig_path.unlink(missing_ok=True)
            if made_dir:
                shutil.rmtree(path.parent, ignore_errors=True)
            raise
    return Channel.from_bytes(raw, where=str(path), sig_raw=encode_signatures(sigs))


def _signed_by_any(old: Channel, keys: tuple[PrivateKey, ...]) -> bool:
    publics = {k.keyid: raw_public_key(k.key.public_key()) for k in keys}
    return any(s.keyid in publics and signature_valid(publics[s.keyid], s.sig, old.raw)
               for s in parse_signatures(old.sig_raw or b"", where=f"channel {old.channel} signature"))


@contextmanager
def repository_lock(root: Path, cvmfs: str | None, *, tag: str, message: str,
                    wait: bool = True) -> Iterator[Commit | None]:
    """Hold the lock that serialises every change of the repository's channels (channel set,
    rollback, publish --channel, repo-gc), inside a CVMFS transaction when ``cvmfs`` is given:
    what the body reads (the current seq, what the channels point at) is still true when it
    writes. The transaction is opened first, so the body reads the state it will publish over.
    ``wait=False``: raise :class:`~depotdelivery.store.atomic.LockBusy` when another process
    holds the lock (the transaction is aborted)."""
    from depotdelivery.publisher.cvmfs import transaction

    with ExitStack() as stack:
        commit = stack.enter_context(transaction(cvmfs, tag=tag, message=message)) if cvmfs is not None else None
        stack.enter_context(dir_lock(root, wait=wait))
        yield commit


def _update(root: str | Path, channel: str, key: PrivateKey | Sequence[PrivateKey], cvmfs: str | None,
            make: Callable[[Repository, Channel | None], Channel | None]) -> Channel:
    """Read the channel, let ``make`` build its next document from it (None: leave it as it
    is), sign and write that (by every key), all under the repository lock."""
    keys = signing_keys(key)
    repo = Repository.open(root)
    with repository_lock(repo.root, cvmfs, tag=f"channel-{channel}", message=f"depotdelivery: channel {channel}") as commit:
        old = _current(repo, channel)
        doc = make(repo, old)
        if doc is None:
            assert old is not None
            return old
        if commit is not None:
            commit.tag = f"channel-{doc.channel}-{doc.seq}"
            commit.message = f"depotdelivery: channel {doc.channel} seq {doc.seq} -> {doc.release}"
        return _write(repo, doc, keys, old)


def _next(old: Channel | None, channel: str, rel: Release, expires: float | None, t: float, *,
          rollback: bool = False) -> Channel:
    return Channel(
        channel=channel, seq=1 if old is None else old.seq + 1, release=rel.ref, release_hash=rel.id,
        issued=format_time(t), expires=None if expires is None else format_time(t + expires),
        previous=() if old is None else old.history(),
        rollback_of=old.seq if rollback and old is not None else None)


def _rollback_target(old: Channel) -> str:
    """The release a default rollback goes back to: the newest earlier one that is neither the
    current release nor one a later rollback already left (walking back past each rollback's
    origin, so a second rollback does not re-deploy the release the first one fled)."""
    by_seq = {e.seq: e.release for e in old.history()}
    fled: set[str] = set()
    for e in old.history():
        if e.seq != old.seq and e.release != old.release and e.release not in fled:
            return e.release
        if e.rollback_of is not None and e.rollback_of in by_seq:
            fled.add(by_seq[e.rollback_of])
    left = f"; rolled back from {', '.join(sorted(fled))}" if fled else ""
    raise UsageError(f"channel {old.channel} has no earlier release to roll back to (now {old.release}{left}); "
                     "name one with --release NAME/VERSION")


def set_channel(root: str | Path, channel: str, release: str, key: PrivateKey | Sequence[PrivateKey], *,
                expires: float | None = DEFAULT_EXPIRY, cvmfs: str | None = None,
                if_changed: bool = False, now: float | None = None) -> Channel:
    """Point ``channel`` at ``release`` ("N/V") with a new document (``seq`` + 1) signed by
    ``key`` (one key, or several: each signs, for nodes with a signature threshold).

    ``expires``: seconds from now (None: never). ``if_changed``: do nothing when the channel
    already points at exactly this release and has not expired (an identical re-publish).
    """
    t = time.time() if now is None else now
    ref = split_ref(release)
    rel = Repository.open(root).read_release(*ref)  # a missing release fails before any transaction

    def unchanged(old: Channel | None) -> bool:
        return if_changed and old is not None and old.release_hash == rel.id and not old.expired(t)

    if cvmfs is not None:
        current = _current(Repository.open(root), channel)
        if current is not None and unchanged(current):
            return current  # an identical re-publish opens no transaction for nothing

    def make(repo: Repository, old: Channel | None) -> Channel | None:
        # read again under the lock: a repo-gc that ran since cannot have removed it unseen
        return None if unchanged(old) else _next(old, channel, repo.read_release(*ref), expires, t)

    return _update(root, channel, key, cvmfs, make)


def rollback_channel(root: str | Path, channel: str, key: PrivateKey | Sequence[PrivateKey], *, to: str | None = None,
                     expires: float | None = DEFAULT_EXPIRY, cvmfs: str | None = None,
                     now: float | None = None) -> Channel:
    """A new document (higher ``seq``, ``rollback_of`` the current seq) pointing back at an
    earlier release of the channel's history: ``to`` ("N/V"), or by default the newest earlier
    release not already rolled back from (see :func:`_rollback_target`)."""
    t = time.time() if now is None else now

    def make(repo: Repository, old: Channel | None) -> Channel:
        if old is None:
            raise NotFoundError(f"channel {channel} does not exist in {repo.root}; nothing to roll back")
        target = _rollback_target(old) if to is None else to
        if all(e.release != target for e in old.previous):
            raise UsageError(f"{target} is not in the history of channel {channel}; use `channel set` to point it at a new release")
        return _next(old, channel, repo.read_release(*split_ref(target)), expires, t, rollback=True)

    return _update(root, channel, key, cvmfs, make)


def channel_history(root: str | Path, channel: str) -> tuple[ChannelEntry, ...]:
    """Every state of ``channel``, newest first (seq, release, release hash, issue time)."""
    repo = Repository.open(root)
    old = _current(repo, channel)
    if old is None:
        raise NotFoundError(f"channel {channel} does not exist in {repo.root} (channels: {', '.join(repo.channels()) or 'none'})")
    return old.history()
