"""Test fakes of the providers the product talks to (Twilio, Mailchimp).

``tests.fakes.twilio.FakeTwilio`` and ``tests.fakes.mailchimp.FakeMailchimp`` are loopback
HTTP servers; ``tests.fakes.fixtures`` has pytest fixtures for them. Nothing is imported
here so that ``python -m tests.fakes.twilio`` runs cleanly.
"""
