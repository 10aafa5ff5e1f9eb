"""What every process builds once: settings, engine, hasher, policy config."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import Engine

from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from worker import db, settings


@dataclass
class Context:
    settings: settings.Settings

    @classmethod
    def load(cls) -> Context:
        return cls(settings.load())

    @cached_property
    def engine(self) -> Engine:
        return db.engine(self.settings)

    @cached_property
    def hasher(self) -> Hasher:
        return self.settings.hasher()

    @cached_property
    def policy(self) -> PolicyConfig:
        return self.settings.policy()
