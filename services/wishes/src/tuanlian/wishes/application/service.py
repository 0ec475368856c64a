"""The wishes service's handlers, sharing one clock (tests replace it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuanlian.shared.db import Database
from tuanlian.shared.events import utcnow
from tuanlian.shared.eventstore import EventStore
from tuanlian.wishes.application.ballots import BallotCommands
from tuanlian.wishes.application.base import Clock
from tuanlian.wishes.application.cadres import CadreCommands
from tuanlian.wishes.application.queries import Queries
from tuanlian.wishes.application.ratings import RatingCommands
from tuanlian.wishes.application.scheduler import Scheduler
from tuanlian.wishes.application.voice import VoiceCommands
from tuanlian.wishes.application.wishes import WishCommands
from tuanlian.wishes.settings import WishesSettings


@dataclass
class WishesService:
    db: Database
    store: EventStore
    _clock: Clock = field(default=utcnow)
    settings: WishesSettings = field(default_factory=WishesSettings)

    def __post_init__(self) -> None:
        args = (self.db, self.store, self._clock, self.settings)
        self.wishes = WishCommands(*args)
        self.voice = VoiceCommands(*args)
        self.ratings = RatingCommands(*args)
        self.ballots = BallotCommands(*args)
        self.cadres = CadreCommands(*args)
        self.queries = Queries(self.db, self.store.schema)
        self.scheduler = Scheduler(self.wishes, self.voice, self.ballots)

    def set_clock(self, clock: Clock) -> None:
        for part in (self.wishes, self.voice, self.ratings, self.ballots, self.cadres):
            part.clock = clock
