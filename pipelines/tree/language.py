"""The language a prompt is written in, when it is not English, for naming nodes of such prompts
("Responding to prompts written in Vietnamese").

py3langid (a maintained fork of langid.py, its model bundled: offline, deterministic) names the
language of the prompt's prose (markup, code and URLs taken out) when it is confident; a prompt
whose letters are mostly of one non-Latin script but that py3langid cannot place is named by its
script ("Cyrillic script"). Short texts are not judged.
"""

from __future__ import annotations

from functools import lru_cache

MIN_LETTERS = 20  # shorter prose is not judged ...
MIN_SCRIPT_LETTERS = 5  # ... unless it is in a non-Latin script (a Chinese character says more)
MIN_CONFIDENCE = 0.8  # py3langid's normalised probability of its best language

# py3langid's codes of the languages a name may mention, as English names them.
LANGUAGE_NAMES = {
    "af": "Afrikaans",
    "ar": "Arabic",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "ca": "Catalan",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "es": "Spanish",
    "et": "Estonian",
    "fa": "Persian",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hr": "Croatian",
    "hu": "Hungarian",
    "id": "Indonesian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "ms": "Malay",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sr": "Serbian",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "th": "Thai",
    "tl": "Tagalog",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "ur": "Urdu",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
# Unicode blocks of non-Latin scripts: (first, last code point, how a name speaks of it).
SCRIPTS: tuple[tuple[int, int, str], ...] = (
    (0x0370, 0x03FF, "Greek"),
    (0x0400, 0x052F, "Cyrillic script"),
    (0x0590, 0x05FF, "Hebrew"),
    (0x0600, 0x06FF, "Arabic script"),
    (0x0900, 0x097F, "Devanagari script"),
    (0x0E00, 0x0E7F, "Thai"),
    (0x1100, 0x11FF, "Korean"),
    (0x3040, 0x30FF, "Japanese"),
    (0x3400, 0x9FFF, "Chinese"),
    (0xAC00, 0xD7AF, "Korean"),
)


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language_of(prose: str) -> str | None:
    """The English name of the language ``prose`` is written in ("Vietnamese", "Cyrillic
    script"), or None for English, for text too short to judge, or when unsure."""
    letters = sum(ch.isalpha() for ch in prose)
    script = script_of(prose)
    if letters < (MIN_SCRIPT_LETTERS if script else MIN_LETTERS):
        return None
    if script is None and prose.isascii() and letters < 3 * MIN_LETTERS:
        return None  # a short ASCII text: most likely English with symbols py3langid misreads
    code, confidence = _identifier().classify(prose)
    if code != "en" and confidence >= MIN_CONFIDENCE and code in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[code]
    return script


def script_of(text: str) -> str | None:
    """How a name speaks of the non-Latin script most of the text's letters are in, if at
    least half are in one ('Chinese', 'Cyrillic script', ...); None otherwise."""
    counts: dict[str, int] = {}
    letters = 0
    for ch in text:
        if not ch.isalpha():
            continue
        letters += 1
        code = ord(ch)
        for lo, hi, name in SCRIPTS:
            if lo <= code <= hi:
                counts[name] = counts.get(name, 0) + 1
                break
    if not counts:
        return None
    name, n = max(counts.items(), key=lambda kv: kv[1])
    return name if n >= 0.5 * letters else None
