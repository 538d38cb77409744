"""Google Meet: `conference.v2.ended` through a Pub/Sub push with an OIDC token; participants from the Meet API."""
