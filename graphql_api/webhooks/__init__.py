"""Webhook delivery: one worker per process follows the audit log for the endpoints whose lease it holds
(db.services.webhook_delivery) and POSTs each matching event, signed, in seq order, to each endpoint."""
