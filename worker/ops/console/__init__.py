"""The web console under /console: calls, a call's result and trace, fixes, review, dead letters, health.

Server-rendered (Jinja2) pages with plain HTML forms: no JavaScript at all. Every page
checks its caller through worker.ops.auth (a viewer reads, an admin changes, a tenant's
token never reaches another tenant) and does its work through the operations API's own
`Operations` (worker.ops.api), the same functions as the JSON API and the CLI.
"""

from worker.ops.console.routes import console_router, mount_console

__all__ = ["console_router", "mount_console"]
