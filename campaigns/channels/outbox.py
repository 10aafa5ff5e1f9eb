"""The outbox channel: writes each rendered message to a file instead of sending it.

Used when no provider is configured (the embedded default and the demo). Messages of
one batch are appended as JSON lines to one file per campaign and worker process,
flushed and fsynced before the outcomes are returned, so that `reconcile` can tell
which messages really were written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from campaigns.channels.base import Channel, Outcome, OutgoingMessage


class OutboxChannel(Channel):
    name = "outbox"

    def __init__(self, directory: Path, channel: str) -> None:
        self.directory = directory
        self.channel = channel

    def _file(self, campaign_id: int) -> Path:
        folder = self.directory / f"campaign-{campaign_id}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.channel}-{os.getpid()}.jsonl"

    def build(self, message: OutgoingMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "recipient_id": message.recipient_id,
            "to": message.to,
            "body": message.body,
            "unsubscribe_url": message.unsubscribe_url,
        }
        if self.channel == "email":
            payload["subject"] = message.subject
            payload["headers"] = message.headers
        return payload

    def send_payloads(self, payloads: Sequence[tuple[OutgoingMessage, Any]]) -> list[Outcome]:
        if not payloads:
            return []
        path = self._file(payloads[0][0].campaign_id)
        with path.open("a", encoding="utf-8") as out:
            for _message, payload in payloads:
                out.write(json.dumps(payload, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return [
            Outcome(m.recipient_id, "sent", provider_id=f"outbox:{path.name}") for m, _ in payloads
        ]

    def reconcile(self, campaign_id: int, recipient_ids: Sequence[int]) -> dict[int, str]:
        wanted = set(recipient_ids)
        found: dict[int, str] = {}
        folder = self.directory / f"campaign-{campaign_id}"
        if not folder.exists():
            return found
        for path in folder.glob(f"{self.channel}-*.jsonl"):
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        rid = int(json.loads(line)["recipient_id"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash was never a message
                    if rid in wanted:
                        found[rid] = f"outbox:{path.name}"
        return found

    def messages(self, campaign_id: int) -> list[dict[str, Any]]:
        """Everything written for a campaign (for tests, the demo and reports)."""
        folder = self.directory / f"campaign-{campaign_id}"
        out: list[dict[str, Any]] = []
        for path in sorted(folder.glob(f"{self.channel}-*.jsonl")) if folder.exists() else []:
            with path.open(encoding="utf-8") as lines:
                for line in lines:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        return out
