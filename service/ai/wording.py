"""The offline `local` provider's own words, in the languages it has them in.

It cannot translate: what it quotes (transcript sentences, the stored summary) stays in the
language it was written in, and its own words follow that language where it has them.
"""

from service.ai.languages import language_name, primary, same_language
from service.videos.models import Citation

WORDING: dict[str, dict[str, str]] = {
    "en": {
        "no_match": "The video does not seem to talk about that: nothing in its transcript matches the question.",
        "from_the_video": "From the video",
        "summary": "Summary",
        "key_points": "Key points",
        "chapters": "Chapters",
        "questions": "Questions and answers",
        "no_summary": "This video has no summary yet to answer that from.",
        "fewer": "{count} of the {asked} asked: the summary holds no more",
        "chapter_question": "What does the part “{title}” ({span}) cover?",
        "moment_question": "What is said at {time}?",
        "q": "Q",
        "a": "A",
    },
    "es": {
        "no_match": "El vídeo no parece hablar de eso: nada en su transcripción coincide con la pregunta.",
        "from_the_video": "Del vídeo",
        "summary": "Resumen",
        "key_points": "Puntos clave",
        "chapters": "Capítulos",
        "questions": "Preguntas y respuestas",
        "no_summary": "Este vídeo aún no tiene un resumen del que responder.",
        "fewer": "{count} de los {asked} pedidos: el resumen no tiene más",
        "chapter_question": "¿De qué trata la parte «{title}» ({span})?",
        "moment_question": "¿Qué se dice en {time}?",
        "q": "P",
        "a": "R",
    },
    "fr": {
        "no_match": "La vidéo ne semble pas en parler : rien dans sa transcription ne correspond à la question.",
        "from_the_video": "Dans la vidéo",
        "summary": "Résumé",
        "key_points": "Points clés",
        "chapters": "Chapitres",
        "questions": "Questions et réponses",
        "no_summary": "Cette vidéo n'a pas encore de résumé à partir duquel répondre.",
        "fewer": "{count} sur les {asked} demandés : le résumé n'en contient pas plus",
        "chapter_question": "De quoi parle la partie « {title} » ({span}) ?",
        "moment_question": "Que dit-on à {time} ?",
        "q": "Q",
        "a": "R",
    },
    "de": {
        "no_match": "Das Video scheint darüber nicht zu sprechen: Nichts im Transkript passt zur Frage.",
        "from_the_video": "Aus dem Video",
        "summary": "Zusammenfassung",
        "key_points": "Kernpunkte",
        "chapters": "Kapitel",
        "questions": "Fragen und Antworten",
        "no_summary": "Für dieses Video gibt es noch keine Zusammenfassung, aus der sich antworten ließe.",
        "fewer": "{count} der {asked} gewünschten: mehr enthält die Zusammenfassung nicht",
        "chapter_question": "Worum geht es im Teil „{title}“ ({span})?",
        "moment_question": "Was wird bei {time} gesagt?",
        "q": "F",
        "a": "A",
    },
    "it": {
        "no_match": "Il video non sembra parlarne: niente nella sua trascrizione corrisponde alla domanda.",
        "from_the_video": "Dal video",
        "summary": "Riassunto",
        "key_points": "Punti chiave",
        "chapters": "Capitoli",
        "questions": "Domande e risposte",
        "no_summary": "Questo video non ha ancora un riassunto da cui rispondere.",
        "fewer": "{count} dei {asked} richiesti: il riassunto non ne contiene altri",
        "chapter_question": "Di che cosa parla la parte «{title}» ({span})?",
        "moment_question": "Che cosa si dice a {time}?",
        "q": "D",
        "a": "R",
    },
    "pt": {
        "no_match": "O vídeo não parece falar disso: nada na sua transcrição corresponde à pergunta.",
        "from_the_video": "Do vídeo",
        "summary": "Resumo",
        "key_points": "Pontos principais",
        "chapters": "Capítulos",
        "questions": "Perguntas e respostas",
        "no_summary": "Este vídeo ainda não tem um resumo a partir do qual responder.",
        "fewer": "{count} dos {asked} pedidos: o resumo não tem mais",
        "chapter_question": "De que trata a parte «{title}» ({span})?",
        "moment_question": "O que é dito em {time}?",
        "q": "P",
        "a": "R",
    },
}


def wording_language(language: str | None) -> str:
    """The language of WORDING closest to `language`: itself, else English."""
    code = primary(language) or "en"
    return code if code in WORDING else "en"


def words_in(language: str | None) -> dict[str, str]:
    return WORDING[wording_language(language)]


def language_note(requested: str | None, written: str | None) -> str | None:
    """What a field of the entry says when the text is not in the language asked for; None when it is."""
    if not requested or not written or same_language(requested, written):
        return None
    return (
        f"The local provider cannot translate: this is written in {language_name(written)}, "
        f"not in {language_name(requested)} as asked."
    )


def low_confidence_note(citations: list[Citation]) -> str | None:
    """What the entry's note says when a quoted passage comes from speech the recognizer was unsure of."""
    doubtful = sum(citation.low_confidence for citation in citations)
    if not doubtful:
        return None
    quoted = (
        "The quoted passage was" if len(citations) == 1 else f"{doubtful} of the {len(citations)} quoted passages were"
    )
    return f"{quoted} transcribed with low confidence and may be misheard (marked low_confidence)."
