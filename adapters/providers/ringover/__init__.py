"""Ringover: call `hangup` webhooks signed as an HS512 JWT, calls read from `/v2/calls/{id}`."""
