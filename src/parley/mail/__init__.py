"""Outgoing mail: the SMTP client, the message templates and the durable outbox."""
