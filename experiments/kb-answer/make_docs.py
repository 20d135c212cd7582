"""Write the corpus: one text file per topic of the Python language reference that ships
with every Python (``pydoc_data.topics``, the text behind ``help("try")``).

The files are committed so that labels stay valid across Python versions; run this again
only to refresh them deliberately (then check ``queries.jsonl`` against the new text).
"""

from __future__ import annotations

import sys
from pathlib import Path
from pydoc_data.topics import topics


def main(folder: Path = Path(__file__).parent / "docs") -> None:
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    for topic, text in sorted(topics.items()):
        (folder / f"{topic}.txt").write_text(text.rstrip() + "\n", encoding="utf-8")
    print(f"{len(topics)} topics from Python {sys.version.split()[0]} written to {folder}")


if __name__ == "__main__":
    main()
