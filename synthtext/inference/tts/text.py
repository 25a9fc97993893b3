"""The words to speak: from a string, a .txt or a .pdf file; long text cut at sentence boundaries."""

from __future__ import annotations

import re
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from synthtext.ops.errors import SynthTextError

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def read_text(text: str | None = None, text_file: str | Path | None = None) -> str:
    """The text given directly, or read from a ``.txt`` (UTF-8) or ``.pdf`` file; never empty."""
    if (text is None) == (text_file is None):
        raise SynthTextError("give either --text or --text-file")
    if text_file is not None:
        path = Path(text_file)
        if not path.is_file():
            raise SynthTextError(f"text file {path} not found")
        text = _pdf_text(path) if path.suffix.lower() == ".pdf" else _plain_text(path)
    words = " ".join(str(text).split())
    if not words:
        where = f" in {text_file}" if text_file else ""
        raise SynthTextError(f"the text{where} is empty: give some words to speak")
    return words


def _plain_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SynthTextError(f"{path} is not UTF-8 text (give a .txt in UTF-8 or a .pdf)") from exc


def _pdf_text(path: Path) -> str:
    try:
        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise SynthTextError(f"{path} is not a readable PDF: {exc}") from exc


def split_sentences(text: str, max_chars: int = 240) -> list[str]:
    """Sentences in order; one longer than ``max_chars`` is cut at clause marks, then between words."""
    pieces = []
    for sentence in _SENTENCE_END.split(" ".join(text.split())):
        pieces.extend(_cut(sentence.strip(), max_chars))
    return [p for p in pieces if p]


def _cut(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    out, current = [], ""
    parts = _CLAUSE_END.split(sentence)
    if len(parts) == 1:
        parts = sentence.split(" ")
    for part in parts:
        candidate = f"{current} {part}".strip()
        if current and len(candidate) > max_chars:
            out.extend(_cut(current, max_chars) if len(parts) > 1 and " " in current else [current])
            current = part
        else:
            current = candidate
    if current:
        out.extend(_cut(current, max_chars) if len(current) > max_chars and " " in current else [current])
    return out
