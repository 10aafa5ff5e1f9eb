"""Opt-out intake: every way a person says no, turned into ledger entries.

One module per provider (`twilio`, `mailchimp`, `mailbox`), each with `verify` (raises
`events.WebhookRejected`) where the provider signs or authenticates, and `parse`
functions that map the provider's event names to ours (`events.OptOutEvent`,
`events.DeliveryEvent`), keeping the raw payload beside the event. `record` writes
events to the ledger, the review queue and the event tables; `unsubscribe` serves
the unsubscribe link; `review` is the queue a person works through.

Adding a provider:
1. a module here with `verify(request, ...)` and `parse(request) -> list[Event]`,
   built around a mapping table from the provider's event names to an action
   (SUPPRESS, ERASURE_REQUEST, ADDRESS_CHANGE, REVIEW, RECORD), a scope and a reason;
2. an allow-list of the payload fields that may be stored (never personal data);
3. an event id per event that a provider's retry repeats exactly (the ledger's
   source_event), so that a retry is recorded once;
4. a thin route in `worker/web/webhooks.py` that verifies, parses, records and
   commits before it answers;
5. tests with payloads exactly as the provider posts them, retried.
"""
