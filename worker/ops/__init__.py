"""Operations: the `callmatch` CLI, the admin HTTP API, live-call operations and readiness."""
