"""Per-node trust: verified channel/release documents (remembered by their exact bytes) and the
highest channel ``seq`` accepted (rollback protection), checked on every prepare()."""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # no `typing` on the hot path (see depotdelivery/__init__.py)

from depotdelivery.errors import TrustError
from depotdelivery.node._record import Record
from depotdelivery.node.cache import NodeCache, crc32_hex
from depotdelivery.readbounded import DOCUMENT_LIMIT, read_bounded
from depotdelivery.store import layout

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

    from depotdelivery.store.release import Release
    from depotdelivery.store.repo import Repository

__all__ = ["ChannelFacts", "keys_fingerprint", "load_release", "remembered_release_id", "state_key", "verified_channel"]


def keys_fingerprint(directory: str) -> str:
    """The trusted-keys directory's state (names, sizes, mtimes, inodes; the threshold file's
    content): a verification remembered under another state (a key added, removed or revoked,
    the threshold changed) is redone."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return "unreadable"
    parts = []
    for e in entries:
        try:
            st = e.stat()
        except OSError:
            continue
        parts.append(f"{e.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
        if e.name == "threshold":
            # store.keys.THRESHOLD_FILE, by content too: "1" rewritten in place as "2" keeps
            # size and inode, and on a coarse-mtime filesystem the mtime, but must be re-checked
            parts.append(repr(_read(e.path)))
    return "|".join(parts)


def _read(path: str) -> bytes | None:
    try:
        return read_bounded(path, DOCUMENT_LIMIT)
    except OSError:
        return None  # absent, or anything else: the cold path re-reads through the store and reports the error properly


class ChannelFacts(Record):
    """What prepare() needs from a verified channel document; ``document``: the release it
    names, when verifying the channel just read it (None when remembered)."""

    __slots__ = ("channel", "document", "expires", "expires_text", "release", "release_hash", "seq")
    _defaults: ClassVar[dict[str, Any]] = {"document": None}
    channel: str
    seq: int
    release: str
    release_hash: str
    expires: float | None
    expires_text: str | None
    document: Release | None


def _remembered(record: Any, raw: bytes | None, sig: bytes | None, fp: str) -> bool:
    return (
        isinstance(record, dict)
        and raw is not None
        and record.get("trust") == fp
        and record.get("raw") == raw.decode("utf-8", "replace")
        and record.get("sig") == (None if sig is None else sig.decode("utf-8", "replace"))
    )


def verified_channel(cache: NodeCache, root: str, repo_id: str, channel: str, trusted_keys: str,
                     *, now: float | None = None, remembered_only: bool = False,
                     repository: Callable[[], Repository] | None = None) -> ChannelFacts | None:
    """The channel ``channel`` of the repository at ``root``, signature-verified (or remembered
    as verified for these exact bytes under this trust state), not expired, and not older than
    the highest ``seq`` this node accepted. With ``remembered_only`` (the hot path), None
    when that needs a signature check or a trust-state update. ``repository``: how to get the
    opened repository when a document must be verified (default: open ``root``)."""
    path = layout.channel_file(root, channel)
    raw, sig = _read(path), _read(layout.sig_file(path))
    fp = keys_fingerprint(trusted_keys)
    record_path = os.path.join(cache.verified, f"{repo_id}-channel-{channel}.json")
    record = cache.read_json(record_path)
    if record is not None and _remembered(record, raw, sig, fp):
        facts = ChannelFacts(channel=channel, seq=record["seq"], release=record["release"],
                             release_hash=record["release_hash"], expires=record["expires"],
                             expires_text=record["expires_text"])
    elif remembered_only:
        return None
    else:
        facts = _verify_channel(cache, _opened(root, repository), channel, trusted_keys, fp, record_path, now)
    now = time.time() if now is None else now
    if facts.expires is not None and now >= facts.expires:
        raise TrustError(
            f"{path}: channel {channel!r} expired at {facts.expires_text} (seq {facts.seq}); "
            "the publisher must re-sign it (`depotdelivery channel set`)")
    if not _check_seq(cache, state_key(root), facts, where=path, update=not remembered_only):
        return None
    return facts


def _opened(root: str, repository: Callable[[], Repository] | None) -> Repository:
    if repository is not None:
        return repository()
    from depotdelivery.store.repo import Repository

    return Repository.open(root)


def _verify_channel(cache: NodeCache, repo: Repository, channel: str, trusted_keys: str, fp: str,
                    record_path: str, now: float | None) -> ChannelFacts:
    from depotdelivery.store.channel import parse_time
    from depotdelivery.store.keys import TrustStore

    ch = repo.read_channel(channel, TrustStore.from_dir(trusted_keys), now=now, check_expiry=False)
    expires = None if ch.expires is None else float(parse_time(ch.expires) or 0)
    # A channel names its release twice, by ref and by hash: check they agree before remembering
    # the document, or a warm cache holding the hash's depot would serve it under the other name
    # (mix-and-match; tests/adversarial/test_paths_and_mixing.py). One small read per new document.
    name, _, version = ch.release.partition("/")
    rel = repo.read_release(name, version)
    if rel.id != ch.release_hash:
        from depotdelivery.errors import IntegrityError

        raise IntegrityError(
            f"{layout.channel_file(str(repo.root), channel)}: names release {ch.release} with hash {ch.release_hash[:16]}..., but that "
            f"release's release.json hashes to {rel.id[:16]}... (a mixed-up mirror, or a stale CVMFS catalog)")
    facts = ChannelFacts(channel=channel, seq=ch.seq, release=ch.release, release_hash=ch.release_hash,
                         expires=expires, expires_text=ch.expires, document=rel)
    cache.ensure()
    cache.write_json(record_path, {
        "trust": fp, "raw": ch.raw.decode("utf-8"),
        "sig": None if ch.sig_raw is None else ch.sig_raw.decode("utf-8", "replace"),
        "seq": facts.seq, "release": facts.release, "release_hash": facts.release_hash,
        "expires": facts.expires, "expires_text": facts.expires_text,
    }, durable=False)  # an accelerator: lost, the channel is verified again
    return facts


def state_key(root: str) -> str:
    """Which trust state a repository uses: its root *as configured on this node*. Not the id in
    depotdelivery-repo.json: that file is unsigned, so a hostile mirror could change the id to
    start a fresh state and replay an old, validly signed channel document (rollback attack;
    tests/adversarial/test_replay_and_keys.py)."""
    return f"root-{crc32_hex(os.path.abspath(root))}"


def _check_seq(cache: NodeCache, key: str, facts: ChannelFacts, *, where: str, update: bool) -> bool:
    """Refuse a channel older than the newest this node accepted (rollback attack) or a second
    document with the same ``seq`` naming another release; remember a newer one (``update``;
    without it, return False when the state would change)."""
    state_path = os.path.join(cache.trust, key, f"{facts.channel}.json")
    state = cache.read_json(state_path)
    if isinstance(state, dict) and state.get("seq") == facts.seq and state.get("release_hash") == facts.release_hash:
        return True  # the hot path: nothing new
    if isinstance(state, dict) and isinstance(state.get("seq"), int) and facts.seq < state["seq"]:
        _refuse_downgrade(facts, state, state_path, where)
    if not update:
        return False
    from depotdelivery.node.locks import hydration_lock

    cache.ensure()
    os.makedirs(os.path.dirname(state_path), exist_ok=True)
    with hydration_lock(os.path.join(cache.locks, f"trust-{key}-{facts.channel}.lock"), timeout=60):
        state = cache.read_json(state_path)
        if isinstance(state, dict) and isinstance(state.get("seq"), int):
            if facts.seq < state["seq"]:
                _refuse_downgrade(facts, state, state_path, where)
            if facts.seq == state["seq"] and facts.release_hash != state.get("release_hash"):
                raise TrustError(
                    f"{where}: channel {facts.channel!r} seq {facts.seq} now names release {facts.release} "
                    f"({facts.release_hash[:16]}...) but this node accepted {state.get('release')} under the same "
                    "seq: refusing two documents with one seq")
            if facts.seq == state["seq"]:
                return True
        # durable: a state lost in a power cut would let an older signed channel back in
        cache.write_json(state_path, {"seq": facts.seq, "release": facts.release,
                                      "release_hash": facts.release_hash, "accepted": time.time()})
    return True


def _refuse_downgrade(facts: ChannelFacts, state: dict[str, Any], state_path: str, where: str) -> None:
    raise TrustError(
        f"{where}: channel {facts.channel!r} went back from seq {state['seq']} ({state.get('release')}) "
        f"to seq {facts.seq} ({facts.release}): refusing a downgrade (rollback attack?). A publisher's "
        f"rollback is a new channel document with a higher seq; to accept this one, remove {state_path}")


def remembered_release_id(cache: NodeCache, root: str, repo_id: str, ref: str, trusted_keys: str) -> str | None:
    """The id of pinned release ``ref`` if this node already verified its exact bytes and
    signature under the current trust state (the hot path), else None."""
    name, _, version = ref.partition("/")
    path = layout.release_file(root, name, version)
    raw, sig = _read(path), _read(layout.sig_file(path))
    record = cache.read_json(os.path.join(cache.verified, f"{repo_id}-pinned-{name}-{version}.json"))
    if (record is not None and _remembered(record, raw, sig, keys_fingerprint(trusted_keys))
            and isinstance(record.get("id"), str)):
        return str(record["id"])
    return None


def load_release(cache: NodeCache, repo: Repository, repo_id: str, ref: str, trusted_keys: str,
                 *, expected_id: str | None) -> Release:
    """Read and verify release ``ref`` (NAME/VERSION) of ``repo``: against the hash a verified
    channel names (``expected_id``), or, pinned, by its own signature (then remembered)."""
    from depotdelivery.errors import IntegrityError

    name, _, version = ref.partition("/")
    root = repo.root
    if expected_id is not None:
        rel = repo.read_release(name, version)
        if rel.id != expected_id:
            raise IntegrityError(
                f"release {ref} in {root}: release.json hashes to {rel.id[:16]}... but the signed channel "
                f"names {expected_id[:16]}... (modified after publishing, or a stale CVMFS catalog)")
        return rel
    from depotdelivery.store.keys import TrustStore

    fp = keys_fingerprint(trusted_keys)
    rel = repo.read_release(name, version, TrustStore.from_dir(trusted_keys))
    cache.ensure()
    cache.write_json(os.path.join(cache.verified, f"{repo_id}-pinned-{name}-{version}.json"), {
        "trust": fp, "raw": rel.raw.decode("utf-8"),
        "sig": None if rel.sig_raw is None else rel.sig_raw.decode("utf-8", "replace"), "id": rel.id},
        durable=False)  # an accelerator: lost, the release is verified again
    return rel
