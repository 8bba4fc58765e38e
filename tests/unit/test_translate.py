"""Dictionary-based query translation: dictd parsing, inflection fallback, compounds."""

from __future__ import annotations

import gzip
from pathlib import Path

from concierge.retrieval.translate import QueryTranslator

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(value: int) -> str:
    digits = ""
    while True:
        digits = ALPHABET[value % 64] + digits
        value //= 64
        if not value:
            return digits


def write_dictionary(folder: Path, name: str, entries: dict[str, str]) -> None:
    data = b""
    index = []
    for headword, entry in entries.items():
        raw = entry.encode()
        index.append(f"{headword}\t{b64(len(data))}\t{b64(len(raw))}")
        data += raw
    (folder / f"{name}.index").write_text("\n".join(index) + "\n")
    with gzip.open(folder / f"{name}.dict.dz", "wb") as out:
        out.write(data)


ENTRIES = {
    "ordner": "Ordner <fem, n, sg>\npaper folder <n>, folder <n>\n   Synonyms: {Heftmappe}\n\n see: {Ordner}\n",
    "ganz": 'ganz /gants/\nall of ([+ sg])\n      "mein ganzes Leben lang"  - all of my life\n',
    "datei": "Datei <fem>\n [comp.] computer file, file\n",
    "umgebungsvariable": "Umgebungsvariable\nenvironment variable\n",
}


def test_translations_come_from_the_senses_not_from_examples_or_synonyms(tmp_path: Path) -> None:
    write_dictionary(tmp_path, "freedict-deu-eng", ENTRIES)
    translator = QueryTranslator(tmp_path)
    result = translator.translate(["Ordner", "Umgebungsvariable"], "german", "english")
    assert result is not None
    assert result.text == "paper folder folder environment variable"
    assert result.translated_words == 2


def test_inflected_words_compounds_and_unknown_words(tmp_path: Path) -> None:
    write_dictionary(tmp_path, "freedict-deu-eng", ENTRIES)
    translator = QueryTranslator(tmp_path)
    result = translator.translate(["ganzen", "ZIP-Datei", "Python"], "german", "english")
    assert result is not None
    # "ganzen" is found as "ganz"; "ZIP-Datei" part by part; "Python" is kept as written.
    assert result.text == "all of ZIP computer file file Python"
    assert result.translated_words == 2


def test_languages_are_those_with_a_dictionary_into_the_target(tmp_path: Path) -> None:
    write_dictionary(tmp_path, "freedict-deu-eng", ENTRIES)
    write_dictionary(tmp_path, "freedict-spa-eng", {"hilo": "hilo /ilo/\nthread\n"})
    translator = QueryTranslator(tmp_path)
    assert translator.languages("english") == ["german", "spanish"]
    assert translator.languages("german") == []
    assert translator.translate(["hilo"], "french", "english") is None


def test_conjugated_words_are_found_through_their_stem(tmp_path: Path) -> None:
    write_dictionary(
        tmp_path,
        "freedict-spa-eng",
        {"esperar": "esperar\nto wait, expect\n", "esperanza": "esperanza\nhope\n", "hilo": "hilo\nthread\n"},
    )
    translator = QueryTranslator(tmp_path)
    # "espere" (subjunctive) and "hilos" (plural) are no headwords; their Snowball stems are.
    result = translator.translate(["espere", "hilos"], "spanish", "english")
    assert result is not None
    assert result.text == "to wait expect thread"
    assert result.translated_words == 2


def test_german_compounds_are_translated_part_by_part(tmp_path: Path) -> None:
    entries = {
        "unter": "unter\nunder, below\n",
        "ordner": ENTRIES["ordner"],
        "umgebung": "Umgebung\nenvironment\n",
        "variable": "Variable\nvariable\n",
    }
    write_dictionary(tmp_path, "freedict-deu-eng", entries)
    translator = QueryTranslator(tmp_path)
    # Inflected, and with a linking "s" between the parts.
    result = translator.translate(["Unterordnern", "Umgebungsvariablen", "asyncio"], "german", "english")
    assert result is not None
    assert result.text == "under paper folder folder environment variable asyncio"
    assert result.translated_words == 2
