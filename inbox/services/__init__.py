"""Domain writes: every write and every event lives here. No Starlette, no Jinja."""
