"""Word-by-word query translation with FreeDict bilingual dictionaries, for English-only models.

The offline embedding model (all-MiniLM-L6-v2) and an English full-text configuration find
almost nothing for "Wie lese ich eine Umgebungsvariable aus?". When a question is in another
language than the knowledge base, its content words are looked up in a `freedict-<from>-<to>`
dictionary (Debian's dict-freedict-* packages, dictd format) and search runs on the translation.
A multilingual embedding model (EmbeddingGemma) needs none of this; it does no harm there.
"""

from __future__ import annotations

import bisect
import gzip
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import snowballstemmer

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
# Languages that write compounds as one word ("Unterordner" = "Unter" + "Ordner"), and the
# linking letters between their parts ("Umgebung-s-variable").
_COMPOUNDING = {"german": ("s", "n", "en", "e"), "dutch": ("s", "en", "e")}
_MIN_PART = 3
Stem = Callable[[str], str]


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
        self._headwords = sorted(index)

    def same_stem(self, word: str, stem: Stem, most: int = 200) -> str | None:
        """The shortest headword with the same stem as `word` ("espere" finds "esperar"), if any.

        Headwords sharing a stem start with it, so only those after it in sorted order are stemmed.
        """
        key = stem(word.casefold())
        if len(key) < _MIN_PART:
            return None
        best: str | None = None
        start = bisect.bisect_left(self._headwords, key)
        for headword in self._headwords[start : start + most]:
            if not headword.startswith(key):
                break
            if (best is None or len(headword) < len(best)) and stem(headword) == key:
                best = headword
        return best

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
        stem = _stemmer(source)
        linking = _COMPOUNDING.get(source)
        out: list[str] = []
        translated = 0
        for word in words:
            found = _lookup(dictionary, word, stem)
            if not found and "-" in word:  # "ZIP-Datei": translate the parts
                found = [t for part in word.split("-") for t in (_lookup(dictionary, part, stem) or [part])]
            if not found and linking is not None:
                found = _compound(dictionary, word, stem, linking)
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


def _stemmer(language: str) -> Stem:
    """The Snowball stemmer of `language` (the algorithms Postgres' own text search uses)."""
    algorithm = snowballstemmer.stemmer(language)
    return algorithm.stemWord  # type: ignore[no-any-return]


def _lookup(dictionary: Dictionary, word: str, stem: Stem) -> list[str]:
    """Translations of the word as written, else of a headword with its stem (inflections and
    conjugations: "espere" is "esperar"), else of it with up to three final letters dropped."""
    if found := dictionary.translations(word):
        return found
    if (headword := dictionary.same_stem(word, stem)) is not None:
        return dictionary.translations(headword)
    for cut in range(1, _MAX_STRIPPED + 1):
        stripped = word[: len(word) - cut]
        if len(stripped) < _MIN_STEM:
            break
        if found := dictionary.translations(stripped):
            return found
    return []


def _compound(dictionary: Dictionary, word: str, stem: Stem, linking: tuple[str, ...]) -> list[str]:
    """A compound's translation from its two parts, the longest known first part preferred
    ("Unterordnern" is "unter" + "Ordner": "under folder"); [] if no split has both parts known."""
    lowered = word.casefold()
    for split in range(len(lowered) - _MIN_PART, _MIN_PART - 1, -1):
        head, tail = lowered[:split], lowered[split:]
        tail_words = _lookup(dictionary, tail, stem)
        if not tail_words:
            continue
        heads = [head, *(head[: -len(link)] for link in linking if head.endswith(link))]
        for candidate in heads:
            if len(candidate) >= _MIN_PART and (head_words := _lookup(dictionary, candidate, stem)):
                return [head_words[0], *tail_words[:2]]
    return []


def words(text: str) -> list[str]:
    """The words of `text` (hyphenated compounds kept whole: "ZIP-Datei"); stop words are removed later."""
    return _WORD.findall(text)
