"""The one conversion between release.json's :class:`~depotdelivery.store.release.Clone` records
and Julia's clone targets (:class:`~depotdelivery.julia.targetdata.ImageTarget` as read from an
image or a ``.ji`` header, :class:`~depotdelivery.julia.cputarget.TargetSpec` as parsed from
``JULIA_CPU_TARGET``). The publisher writes clones with it, the node reads them back with it."""
from __future__ import annotations

from depotdelivery.store.release import Clone

TYPE_CHECKING = False  # no `typing` on a job's path (see depotdelivery/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable

    from depotdelivery.julia.cputarget import TargetSpec
    from depotdelivery.julia.features import FeatureTable
    from depotdelivery.julia.targetdata import ImageTarget

__all__ = ["clones_from_image", "clones_from_specs", "image_targets"]


def clones_from_image(targets: Iterable[ImageTarget], table: FeatureTable) -> tuple[Clone, ...]:
    """Clones of targets stored in an image or a ``.ji`` header (``features``: the enabled
    words' names in ``table``)."""
    return tuple(Clone(name=t.name, flags=t.flags, en=t.en_words, dis=t.dis_words,
                       features=tuple(sorted(table.names(t.en_words))), ext=t.ext)
                 for t in targets)


def clones_from_specs(specs: Iterable[TargetSpec], table: FeatureTable) -> tuple[Clone, ...]:
    """Clones of parsed ``JULIA_CPU_TARGET`` entries (their enabled/disabled feature names as
    ``table``'s words)."""
    return tuple(Clone(name=s.name, flags=s.flags, en=table.words(s.enabled), dis=table.words(s.disabled),
                       features=tuple(sorted(s.enabled)), ext=s.ext)
                 for s in specs)


def image_targets(clones: Iterable[Clone]) -> list[ImageTarget]:
    """The clones as Julia stores them (what ``clones.match_targets`` / ``match_pkgimage`` take)."""
    from depotdelivery.julia.targetdata import ImageTarget

    return [ImageTarget(flags=c.flags, en_words=c.en, dis_words=c.dis, name=c.name, ext=c.ext) for c in clones]
