"""What storage says about a stored file."""

from dataclasses import dataclass

from pydantic import BaseModel, Field


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str


class MoveSummary(BaseModel):
    """What `video-analyzer move-files` did."""

    target: str
    moved: int = 0
    bytes_moved: int = 0
    already_there: int = 0
    deleted_meanwhile: int = 0
    """Videos deleted while their file was being moved: the copy went with them."""
    sources_removed: int = 0
    """Copies an earlier run, stopped between switching a document and deleting its source, left."""
    problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lines = [
            f"moved {self.moved} file(s) ({self.bytes_moved:,} bytes) to {self.target} storage; "
            f"{self.already_there} already there",
        ]
        if self.sources_removed:
            lines.append(f"removed {self.sources_removed} source copies an earlier run left after moving them")
        if self.deleted_meanwhile:
            lines.append(f"{self.deleted_meanwhile} video(s) deleted while their file was moved (the copy went too)")
        lines.extend(f"PROBLEM: {problem}" for problem in self.problems)
        lines.append("OK" if self.ok else f"FAILED: {len(self.problems)} file(s) were not moved (see PROBLEM lines)")
        return "\n".join(lines)
