"""HTTP: parse, authorise, render. No model writes here: every write goes through inbox.services."""
