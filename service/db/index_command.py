"""`video-analyzer indexes`: the declared indexes against the store's, and `--apply` to rebuild."""

from dataclasses import dataclass

from service.config import Settings
from service.db.indexes import IndexState, index_states, rebuild_indexes
from service.db.models import DOCUMENT_MODELS
from service.db.service import connect


@dataclass
class IndexReport:
    states: list[IndexState]
    applied: bool

    @property
    def ok(self) -> bool:
        return all(state.ok for state in self.states)

    def render(self) -> str:
        lines = [state.render() for state in self.states]
        if self.ok:
            lines.append(
                "every declared index exists as declared" + (" (rebuilt what differed)" if self.applied else "")
            )
        else:
            lines.append("some indexes differ from the declared ones: `video-analyzer indexes --apply` rebuilds them")
        return "\n".join(lines)


async def run_indexes(settings: Settings, apply: bool) -> IndexReport:
    """Compare (and with `apply`, drop and rebuild what differs); undeclared indexes are left
    alone unless a declared one cannot be built beside them."""
    database = await connect(settings, create_indexes=False)
    try:
        states = await index_states(database.handle, DOCUMENT_MODELS)
        if apply:
            await rebuild_indexes(database.handle, states)
            states = await index_states(database.handle, DOCUMENT_MODELS)
        return IndexReport(states, apply)
    finally:
        database.close()
