"""Text analysis as MongoDB's text index does it: stemming, tokens, stop words."""

import random
import sys
from concurrent.futures import ThreadPoolExecutor

from service.text import stem

WORDS = (
    "running runner runs ran connection connections connected connecting generously generous "
    "organization organizational relational conditional rationalization hopefully happiness "
    "mangées mangeons françaises élèves bibliothèques universitaires hablando corriendo "
    "Häuser laufenden Bücher"
).split()


def test_eight_threads_stemming_at_once_give_the_single_threaded_stems() -> None:
    """A Snowball stemmer keeps state between calls: one shared by threads gave wrong stems and
    IndexError; each thread has its own now. `stem` is uncached (`term` caches), so the threads
    race on the stemmers themselves."""
    languages = ("english", "french", "spanish", "german")
    work = [(word.lower(), language) for word in WORDS for language in languages] * 150
    random.Random(3).shuffle(work)
    expected = [stem(word, language) for word, language in work]

    def stem_all(offset: int) -> list[str]:
        rotated = work[offset:] + work[:offset]
        found = [stem(word, language) for word, language in rotated]
        return found[len(work) - offset :] + found[: len(work) - offset]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, as on a busy server
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(stem_all, range(0, 8 * 997, 997)))
    finally:
        sys.setswitchinterval(interval)
    assert all(result == expected for result in results)
