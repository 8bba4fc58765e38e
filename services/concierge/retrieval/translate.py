"""Word-by-word query translation with FreeDict bilingual dictionaries, for English-only models.

The offline embedding model (all-MiniLM-L6-v2) and an English full-text configuration find
almost nothing for "Wie lese ich eine Umgebungsvariable aus?". When a question is in another
language than the knowledge base, its content words are looked up in a `freedict-<from>-<to>`
dictionary (Debian's dict-freedict-* packages, dictd format) and search runs on the translation.
A multilingual embedding model (EmbeddingGemma) needs none of this; it does no harm there.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Postgres text-search configurations and the ISO 639-3 codes FreeDict names files with.
ISO_BY_CONFIG = {
    "english": "eng",
    "german": "deu",
    "french": "fra",
    "spanish": "spa",
    "italian": "ita",
    "dutch": "nld",
    "portuguese": "por",
}
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_WORD = re.compile(r"\w+(?:-\w+)*")
_PARENTHESES = re.compile(r"\([^)]*\)|\[[^\]]*\]|<[^>]*>|/[^/]*/")
_SENSE = re.compile(r"^\s*(?:\d+\.\s*)?(.+)$")
_NOT_SENSES = ('"', "Synonym", "Note:", "see:", "See:", "{")
# Shortest stem tried when a word is not a headword as written ("Unterordnern" -> "Unterordner").
_MIN_STEM = 4
_MAX_STRIPPED = 3


def _b64(text: str) -> int:
    value = 0
    for char in text:
        value = value * 64 + _B64[char]
    return value


class Dictionary:
    """One dictd dictionary: the index in memory, entries read from the decompressed data."""

    def __init__(self, index: dict[str, tuple[int, int]], data: bytes) -> None:
        self._index = index
        self._data = data

    @classmethod
    def load(cls, stem: Path) -> Dictionary:
        index: dict[str, tuple[int, int]] = {}
        with open(f"{stem}.index", encoding="utf-8") as lines:
            for line in lines:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 3:
                    # The first entry of a headword is its main one.
                    index.setdefault(parts[0].casefold(), (_b64(parts[1]), _b64(parts[2])))
        with gzip.open(f"{stem}.dict.dz") as data:
            return cls(index, data.read())

    def translations(self, word: str, most: int = 3) -> list[str]:
        """English (or target) words for `word`, from the first senses of its entry; [] if unknown."""
        found = self._index.get(word.casefold())
        if found is None:
            return []
        offset, length = found
        entry = self._data[offset : offset + length].decode("utf-8", errors="replace").splitlines()[1:]
        words: list[str] = []
        for line in entry:
            if line.strip().startswith(_NOT_SENSES) or line.startswith("   "):
                continue  # synonyms, usage examples, notes and cross-references: indented or labelled
            sense = _SENSE.match(_PARENTHESES.sub("", line))
            if not sense:
                continue
            for candidate in sense.group(1).split(","):
                candidate = " ".join(candidate.split())
                if candidate and candidate.casefold() not in (w.casefold() for w in words):
                    words.append(candidate)
                if len(words) >= most:
                    return words
        return words


@dataclass(frozen=True)
class Translation:
    text: str
    source_language: str
    translated_words: int


class QueryTranslator:
    """Translates queries into a knowledge base's language with the dictionaries found in a folder.

    Dictionaries load on first use (the German one takes about a second and 100 MB), once.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._loaded: dict[tuple[str, str], Dictionary | None] = {}
        self._lock = threading.Lock()

    def languages(self, target: str) -> list[str]:
        """Configurations with a dictionary into `target` (detection candidates)."""
        to = ISO_BY_CONFIG.get(target)
        return [
            config
            for config, iso in ISO_BY_CONFIG.items()
            if to and config != target and (self._folder / f"freedict-{iso}-{to}.index").is_file()
        ]

    def translate(self, words: list[str], source: str, target: str) -> Translation | None:
        """The content words in `target`, untranslatable ones kept (names, codes); None without a dictionary."""
        dictionary = self._dictionary(source, target)
        if dictionary is None:
            return None
        out: list[str] = []
        translated = 0
        for word in words:
            found = _lookup(dictionary, word)
            if not found and "-" in word:  # "ZIP-Datei": translate the parts
                found = [t for part in word.split("-") for t in (_lookup(dictionary, part) or [part])]
            if found:
                translated += 1
                out.extend(found)
            else:
                out.append(word)
        return Translation(text=" ".join(out), source_language=source, translated_words=translated)

    def _dictionary(self, source: str, target: str) -> Dictionary | None:
        key = (source, target)
        with self._lock:
            if key not in self._loaded:
                stem = self._folder / f"freedict-{ISO_BY_CONFIG.get(source)}-{ISO_BY_CONFIG.get(target)}"
                if not Path(f"{stem}.index").is_file():
                    self._loaded[key] = None
                else:
                    started = time.perf_counter()
                    self._loaded[key] = Dictionary.load(stem)
                    log.info("dictionary loaded path=%s seconds=%.2f", f"{stem}.index", time.perf_counter() - started)
            return self._loaded[key]


def _lookup(dictionary: Dictionary, word: str) -> list[str]:
    """Translations of the word, or of it with up to three final letters dropped (inflections)."""
    for cut in range(_MAX_STRIPPED + 1):
        stem = word[: len(word) - cut] if cut else word
        if len(stem) < _MIN_STEM and cut:
            break
        if found := dictionary.translations(stem):
            return found
    return []


def words(text: str) -> list[str]:
    """The words of `text` (hyphenated compounds kept whole: "ZIP-Datei"); stop words are removed later."""
    return _WORD.findall(text)
