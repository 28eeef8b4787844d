"""The web console served by ``openiai serve`` under ``/console/`` (README "Console").

Server-rendered HTML (Jinja2 templates in ``templates/``, one stylesheet and one optional
script in ``static/``); no CDN, no build step. It sits above :mod:`openiai.api` and reaches
accounts' data only through the API's actions (:func:`openiai.api.dispatch.dispatch`).
"""

from .app import Console, mount

__all__ = ["Console", "mount"]
