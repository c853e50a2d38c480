"""Migrate the SQLite service's database into the store: `video-analyzer migrate-sqlite`, as a script.

python scripts/migrate_sqlite.py SQLITE_PATH [--dry-run] [--copy-files] [--report FILE] [--batch-size N]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["migrate-sqlite", *sys.argv[1:]])
