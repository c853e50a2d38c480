"""Summaries as JSON: the schemas asked for, and reading what a model sends back.

A server that supports structured output is given a JSON schema (`response_format`); any reply is
then read leniently, since a small model, or one cut at its output limit, may send something else.
"""

import json
import re
from typing import Any

from pydantic import ValidationError

from service.ai.schemas import SummaryDraft
from service.text import encodable
from service.videos.models import Chapter

RESPONSE_FORMATS = ("json_schema", "json_object", "none")
"""Structured output, most to least exact: OpenAI's JSON schema (OpenAI, vLLM, Ollama, llama.cpp's
llama-server), a JSON object with a schema (llama-cpp-python's server), or plain text."""

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_SUMMARY_FIELD = re.compile(r'"summary"\s*:\s*"((?:[^"\\]|\\.)*)')
_CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")

_CHAPTER_SCHEMA = {
    "type": "object",
    "properties": {
        "start": {"type": "number"},
        "end": {"type": "number"},
        "title": {"type": "string"},
        "summary": {"type": "string"},
    },
    "required": ["start", "end", "title", "summary"],
    "additionalProperties": False,
}
PART_SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "key_points": {"type": "array", "items": {"type": "string"}},
        "chapters": {"type": "array", "items": _CHAPTER_SCHEMA},
    },
    "required": ["summary", "key_points", "chapters"],
    "additionalProperties": False,
}
COMBINED_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "key_points": {"type": "array", "items": {"type": "string"}}},
    "required": ["summary", "key_points"],
    "additionalProperties": False,
}


def response_format(kind: str, name: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
    if kind == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def _plain_text(content: str) -> str:
    """A reply that is not the JSON asked for, as summary text: the summary field of JSON cut short
    (at the output limit), or the reply itself without code fences."""
    text = _CODE_FENCE.sub("", content.strip()).strip()
    cut_short = _SUMMARY_FIELD.search(text)
    if text.startswith("{") and cut_short:
        try:
            return json.loads(f'"{cut_short.group(1).rstrip(chr(92))}"').strip()
        except json.JSONDecodeError:
            return cut_short.group(1).strip()
    return text


def _chapters_within(raw: object, first: float, last: float) -> list[Chapter]:
    """The chapters that parse and lie within the part's times; a small model's others are dropped."""
    chapters = []
    for item in raw if isinstance(raw, list) else []:
        try:
            chapter = Chapter.model_validate(item)
        except ValidationError:
            continue
        if first - 1 <= chapter.start <= chapter.end <= last + 1 and chapter.title.strip():
            chapters.append(chapter)
    return chapters


def _encodable_strings(item: dict[str, Any]) -> dict[str, Any]:
    """JSON may escape a lone surrogate, which no store can write."""
    return {key: encodable(value) if isinstance(value, str) else value for key, value in item.items()}


def parse_summary(content: str, first: float = 0.0, last: float = float("inf")) -> SummaryDraft:
    """The JSON asked for; a reply that is not (a small model's, or one cut at the output limit)
    is kept as plain summary text rather than lost."""
    found = _JSON_OBJECT.search(content)
    try:
        parsed = json.loads(found.group(0) if found else content, object_hook=_encodable_strings)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("summary"), str):
        return SummaryDraft(text=encodable(_plain_text(content)))
    key_points = parsed.get("key_points")
    return SummaryDraft(
        text=parsed["summary"].strip(),
        key_points=[encodable(p.strip()) for p in key_points if isinstance(p, str) and p.strip()]
        if isinstance(key_points, list)
        else [],
        chapters=_chapters_within(parsed.get("chapters"), first, last),
    )
