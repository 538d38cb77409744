"""Aircall: `call.ended` webhooks verified by the body's token, calls read from `/v1/calls/{id}`."""
