"""Freshness: how old an index version is and how far its corpus has moved since.

``status`` reads the corpus again from where the build read it (or takes one) and compares
document hashes with the manifest, so an edit counts only when the text changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from .durations import parse_duration
from .errors import CorpusError

if TYPE_CHECKING:
    from .corpus import Corpus
    from .index import Index


@dataclass(frozen=True)
class FreshnessStatus:
    """Where an index version stands against its corpus and its SLA."""

    index: str
    built_at: datetime
    age: timedelta
    sla: timedelta | None
    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def stale_documents(self) -> int:
        return len(self.changed) + len(self.added) + len(self.removed)

    @property
    def breached(self) -> bool:
        """The SLA is breached when the corpus moved and the index is older than the SLA."""
        return self.sla is not None and self.stale_documents > 0 and self.age > self.sla

    def __str__(self) -> str:
        hours = self.age.total_seconds() / 3600
        sla = f"SLA {self.sla.total_seconds() / 3600:g} h" if self.sla else "no SLA"
        state = "BREACHED" if self.breached else "ok"
        return (f"{self.index}: built {hours:.1f} h ago ({sla}): {state}; "
                f"{len(self.changed)} changed, {len(self.added)} added, "
                f"{len(self.removed)} removed documents since the build")


def status(index: Index | str | Path, corpus: Corpus | None = None, *,
           root: str | Path | None = None, now: datetime | None = None) -> FreshnessStatus:
    """Age, documents changed/added/removed since the build, and whether the SLA is breached.

    An index whose corpus has not moved is fresh however old it is: the SLA bounds how long
    a change may wait, not how often to rebuild.
    """
    from .corpus import Corpus
    from .index import Index, load_index

    index = index if isinstance(index, Index) else load_index(index, root=root, verify=False)
    manifest = index.manifest
    if corpus is None:
        try:
            corpus = Corpus.from_source(manifest["corpus"]["source"])
        except CorpusError as exc:
            raise CorpusError(f"index {index.ref} was built from a corpus that cannot be read "
                              f"now ({exc}); pass the current corpus: status(index, corpus)"
                              ) from exc
    built = manifest["corpus"]["documents"]
    current = corpus.hashes
    built_at = datetime.fromisoformat(manifest["built_at"])
    sla = manifest.get("freshness_sla")
    return FreshnessStatus(
        index=index.ref, built_at=built_at, age=(now or datetime.now(UTC)) - built_at,
        sla=parse_duration(sla) if sla else None,
        changed=sorted(d for d in current if d in built and built[d] != current[d]),
        added=sorted(set(current) - set(built)), removed=sorted(set(built) - set(current)))
