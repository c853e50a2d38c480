"""What a migration run reports: counts read, written and reported, and what disagreed."""

from pydantic import BaseModel, Field


class Tally(BaseModel):
    read: int = 0
    written: int = 0
    reported: int = Field(default=0, description="went to the report file instead of the store")


class MigrationSummary(BaseModel):
    source: str
    schema_form: str = ""
    dry_run: bool = False
    report: str | None = None
    videos: Tally = Field(default_factory=Tally)
    chat_entries: Tally = Field(default_factory=Tally)
    orphan_chat_rows: Tally = Field(default_factory=Tally)
    missing_files: Tally = Field(default_factory=Tally)
    files_copied: int = 0
    texts_moved_to_storage: int = 0
    unreadable_times: int = 0
    chat_values_not_migrated: int = Field(
        default=0, description="chat rows with values in columns a chat entry has no field for"
    )
    migrated_videos_in_store: int | None = None
    problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """The table printed at the end of a run."""
        verb = "would write" if self.dry_run else "written"
        lines = [
            f"source: {self.source} ({self.schema_form} schema){'  DRY RUN: nothing was written' if self.dry_run else ''}",
            f"{'':<18}{'read':>10}{verb:>13}{'reported':>10}",
        ]
        for label, tally in (
            ("videos", self.videos),
            ("chat entries", self.chat_entries),
            ("orphan chat rows", self.orphan_chat_rows),
            ("missing files", self.missing_files),
        ):
            lines.append(f"{label:<18}{tally.read:>10}{tally.written:>13}{tally.reported:>10}")
        lines.append(
            f"files {'to copy' if self.dry_run else 'copied'}: {self.files_copied}; "
            f"texts moved to storage: {self.texts_moved_to_storage}; unreadable times: {self.unreadable_times}; "
            f"chat rows with values not migrated: {self.chat_values_not_migrated}"
        )
        if self.migrated_videos_in_store is not None:
            lines.append(f"migrated videos now in the store: {self.migrated_videos_in_store}")
        if self.report:
            lines.append(f"report: {self.report}")
        lines.extend(f"PROBLEM: {problem}" for problem in self.problems)
        lines.append(
            "OK: every row read is accounted for" if self.ok else "FAILED: the counts disagree (see PROBLEM lines)"
        )
        return "\n".join(lines)
