"""The repo's docs stand on their own: no reference leaves the repo, and every relative link resolves.

A clone has only the repo, so the contract, the algorithms and the machine facts live in docs/design.md,
docs/algorithms.md and docs/machine.md, and house habits in docs/contributing.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".toml", ".sh"}
#: Notes that live outside the repo (or their old upper-case names): a reference to them dangles in a clone.
FORBIDDEN = ("../shared", "DESIGN.md", "ALGORITHMS.md", "MACHINE.md", "STYLE.md")
#: Markdown links and images: [text](target) and ![alt](target "title").
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to list tracked files")
    # Tracked files, plus new ones not yet added (and not ignored), so a fresh file is checked before its commit.
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode("utf-8").split("\0") if name]


def _text_files() -> list[Path]:
    this = Path(__file__).resolve()
    return [p for p in _tracked_files()
            if p.suffix in TEXT_SUFFIXES and p.resolve() != this and p.is_file()]


def _markdown_docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)  # commands and output, not links


def _anchors(doc: Path) -> set[str]:
    """The heading anchors GitHub gives ``doc``: lower case, punctuation dropped, spaces to hyphens, -1 for repeats."""
    seen: dict[str, int] = {}
    for line in _without_code_blocks(doc.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return set(seen)


def test_no_reference_to_notes_outside_the_repo():
    found = []
    for path in _text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for word in FORBIDDEN:
                if word in line:
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {word!r}")
    assert not found, ("references to notes outside the repo (point them to docs/design.md, docs/algorithms.md, "
                       "docs/machine.md or docs/contributing.md):\n" + "\n".join(found))


@pytest.mark.parametrize("doc", _markdown_docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    assert doc.is_file(), f"{doc.relative_to(ROOT)} is missing"
    broken = []
    for target in _LINK.findall(_without_code_blocks(doc.read_text(encoding="utf-8"))):
        if _EXTERNAL.match(target) and not target.startswith("#"):
            continue  # a web address
        path, _, fragment = unquote(target).partition("#")
        resolved = (doc.parent / path).resolve() if path else doc.resolve()
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(target)
        elif fragment and resolved.suffix == ".md" and fragment.lower() not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{doc.relative_to(ROOT)} has relative links that do not resolve in the repo: {broken}"


def test_the_docs_exist():
    for name in ("design.md", "algorithms.md", "machine.md", "contributing.md"):
        assert (ROOT / "docs" / name).is_file(), f"docs/{name} is missing"
