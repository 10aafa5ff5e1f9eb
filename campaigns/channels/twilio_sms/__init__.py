"""Twilio SMS: one message per recipient through a Messaging Service (SM-2, SM-3, ES-6)."""

from __future__ import annotations

from campaigns.channels.twilio_sms.channel import TwilioSmsChannel
from campaigns.channels.twilio_sms.optouts import carrier_opt_out_recorder

__all__ = ["TwilioSmsChannel", "carrier_opt_out_recorder"]
