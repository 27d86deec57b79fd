"""HTTP: parse, authorise, render. No model writes here: every write goes through inbox.services."""

from starlette.convertors import register_url_convertor

from inbox.routes.guards import IdConvertor

# Before any route module builds its routes: every `{name:int}` path parameter is an id the database can
# hold, so a larger one matches no route (404) instead of failing in the database (500).
register_url_convertor("int", IdConvertor())
