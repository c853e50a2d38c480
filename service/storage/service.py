"""Where video files live. Files are named by keys the service generates, never by client input."""

import asyncio
import uuid
from pathlib import Path

from service.db.journal import fsync_directory


class LocalStorage:
    """A folder of files; uploads land in `.incoming/` and are renamed into place once accepted."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming_dir = root / ".incoming"

    def prepare(self) -> None:
        """Create the folders and remove uploads a crash left half-received."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.incoming_dir.iterdir():
            leftover.unlink(missing_ok=True)

    def new_incoming_path(self) -> Path:
        return self.incoming_dir / f"{uuid.uuid4().hex}.part"

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def path(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key

    async def keep(self, incoming: Path, key: str) -> None:
        """Move an accepted upload into place, durably."""
        await asyncio.to_thread(self._rename_durably, incoming, self.path(key))

    @staticmethod
    def _rename_durably(source: Path, target: Path) -> None:
        source.replace(target)
        fsync_directory(target.parent)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)
