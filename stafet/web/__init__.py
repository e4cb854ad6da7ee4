"""The console: a server-rendered web application for stewards, counsellors, coordinators and operations.

:mod:`~stafet.web.auth` (who is logged in: the :class:`~stafet.web.auth.Authenticator`
interface, local argon2id accounts, throttling), :mod:`~stafet.web.security` (sessions,
CSRF, headers), :mod:`~stafet.web.explain` (why a quarantined row breaks its rule),
:mod:`~stafet.web.app` (the pages, actions and the roles' scopes), ``templates/`` (Jinja2,
Danish) and ``static/`` (every asset).
It reads and writes through the same store queries and domain functions as the CLI.
May import every layer below ``stafet.cli``; only the CLI imports it.
"""
