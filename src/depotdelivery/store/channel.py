"""Channel documents (``channels/<c>.json``): which release a channel points at, with its history."""
from __future__ import annotations

import time

from depotdelivery._record import field, record
from depotdelivery.errors import TrustError
from depotdelivery.store.canonical import canonical_json
from depotdelivery.store.fields import (
    FORMAT,
    Fields,
    check_format,
    load_canonical,
)
from depotdelivery.store.names import is_name

TYPE_CHECKING = False  # no `typing` on a job's cold path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Channel",
    "ChannelEntry",
    "format_time",
    "parse_time",
]



def _is_release_ref(text: str) -> bool:
    """NAME/VERSION, both names (names contain no '/')."""
    name, sep, version = text.partition("/")
    return bool(sep) and is_name(name) and is_name(version)


# the shape of a format_time string, YYYY-MM-DDTHH:MM:SSZ: '0' where a digit goes
_TIME_SHAPE = "0000-00-00T00:00:00Z"


def format_time(epoch: float) -> str:
    """UTC RFC 3339 to the second, the only time format channel documents use."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def parse_time(text: str) -> int | None:
    """Seconds since the epoch of a :func:`format_time` string, None if it is not one."""
    # what re's (\d{4})-(\d{2})-...Z accepted: \d is any Unicode decimal digit (int() reads them)
    if len(text) != len(_TIME_SHAPE) or any(
            not c.isdecimal() if shape == "0" else c != shape for c, shape in zip(text, _TIME_SHAPE)):
        return None
    y, mo, d, h, mi, s = (int(text[a:b]) for a, b in ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19)))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        return None
    if y < 1:
        raise ValueError(f"year {y} is out of range")  # as calendar.timegm (datetime.date) says
    return ((_days_from_civil(y, mo) + d - 1) * 24 + h) * 3600 + mi * 60 + s


def _days_from_civil(y: int, m: int) -> int:
    """Days from 1970-01-01 to the first of month ``m`` of year ``y`` (proleptic Gregorian),
    what ``calendar.timegm`` computes through ``datetime``: importing calendar (datetime,
    locale) cost a cold node job a few ms for one subtraction. The classic era/day-of-era
    count (400-year eras of 146097 days, years starting in March)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _rollback_of(f: Fields, seq: int) -> int | None:
    value = f.int("rollback_of", minimum=1, optional=True)
    if value is not None and value >= seq:
        raise f.error("rollback_of", f"{value} is not below the seq {seq} it belongs to")
    return value


def _time_field(f: Fields, key: str, *, optional: bool = False) -> str | None:
    value = f.str(key, optional=optional)
    if value is not None and parse_time(value) is None:
        raise f.error(key, f"expected a UTC time like 2026-11-24T21:00:00Z, got {value!r}")
    return value


@record(kw_only=True)
class ChannelEntry:
    """One past state of a channel (kept in ``previous``, newest first). ``rollback_of``: the
    seq this state rolled back from (``channel rollback``), None for ``channel set``."""

    seq: int
    release: str
    release_hash: str
    issued: str
    rollback_of: int | None = None

    @classmethod
    def _from_fields(cls, f: Fields) -> ChannelEntry:
        f.only(frozenset({"seq", "release", "release_hash", "issued", "rollback_of"}))
        seq = f.int("seq", minimum=1)
        return cls(seq=seq, release=f.str("release", valid=_is_release_ref),
                   release_hash=f.hex64("release_hash"), issued=_time_field(f, "issued") or "",
                   rollback_of=_rollback_of(f, seq))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"seq": self.seq, "release": self.release, "release_hash": self.release_hash,
                             "issued": self.issued}
        if self.rollback_of is not None:  # absent, not null: documents without rollbacks keep their bytes
            d["rollback_of"] = self.rollback_of
        return d


@record(kw_only=True)
class Channel:
    """A parsed channel document. ``seq`` only grows; ``expires`` None means never;
    ``rollback_of`` as in :class:`ChannelEntry`."""

    channel: str
    seq: int
    release: str
    release_hash: str
    issued: str
    expires: str | None
    previous: tuple[ChannelEntry, ...] = ()
    rollback_of: int | None = None
    raw: bytes = field(default=b"", compare=False, repr=False)
    sig_raw: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def current(self) -> ChannelEntry:
        return ChannelEntry(seq=self.seq, release=self.release, release_hash=self.release_hash, issued=self.issued,
                            rollback_of=self.rollback_of)

    def history(self) -> tuple[ChannelEntry, ...]:
        """Every state of the channel, newest (this document) first."""
        return (self.current, *self.previous)

    def expired(self, now: float | None = None) -> bool:
        if self.expires is None:
            return False
        return (time.time() if now is None else now) >= (parse_time(self.expires) or 0)

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """What ``channel show --json`` (and set/rollback) print: where it points, since and until when."""
        return {"channel": self.channel, "seq": self.seq, "release": self.release, "release_hash": self.release_hash,
                "issued": self.issued, "expires": self.expires, "expired": self.expired(now)}

    def check_fresh(self, now: float | None = None, *, where: str) -> None:
        """Refuse an expired channel (a freeze attack replays an old, validly signed document)."""
        if self.expired(now):
            raise TrustError(
                f"{where}: channel {self.channel!r} expired at {self.expires} (seq {self.seq}); "
                "the publisher must re-sign it (`depotdelivery channel set`)")

    @classmethod
    def from_dict(cls, obj: Any, *, where: str) -> Channel:
        f = Fields(obj, where)
        check_format(f)
        f.only(frozenset({"format", "channel", "seq", "release", "release_hash", "issued", "expires", "previous",
                          "rollback_of"}))
        seq = f.int("seq", minimum=1)
        previous = tuple(ChannelEntry._from_fields(p) for p in f.subs("previous"))
        last = seq
        for i, p in enumerate(previous):
            if p.seq >= last:
                raise f.error(f"previous[{i}].seq", f"{p.seq} is not below {last} (history is newest first)")
            last = p.seq
        return cls(channel=f.name("channel"), seq=seq, release=f.str("release", valid=_is_release_ref),
                   release_hash=f.hex64("release_hash"), issued=_time_field(f, "issued") or "",
                   expires=_time_field(f, "expires", optional=True), previous=previous,
                   rollback_of=_rollback_of(f, seq))

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str, sig_raw: bytes | None = None) -> Channel:
        c = cls.from_dict(load_canonical(raw, where), where=where)
        return cls(channel=c.channel, seq=c.seq, release=c.release, release_hash=c.release_hash, issued=c.issued,
                   expires=c.expires, previous=c.previous, rollback_of=c.rollback_of, raw=raw, sig_raw=sig_raw)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "channel": self.channel, **self.current.to_dict(), "expires": self.expires,
                "previous": [p.to_dict() for p in self.previous]}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict())
