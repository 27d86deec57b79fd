"""What more than one test file uses, one module for each kind of thing (fixtures stay in conftest.py):

- config: the test app's public URL and Twilio account; apps: running the app, clients of it in-process
- database: the test database; fake_twilio: a Twilio-compatible server; servers: uvicorn in the test's loop
- staff: signing in, CSRF, the signed-in browser; records: clients, cases, assignments
- webhooks: Twilio's signed webhooks and a client's text through them; channels: a second office's number
- events: the event bus; live: the served app, its event streams, the fan-out to open tabs
- pages and api: reading HTML pages and the JSON API's answers; openapi_check: answers against the document
- attachments: sample files; cli: the `inbox` command run for real; paths: where the repository is
- outbox: driving the outbox in-process; workers: `inbox worker` processes run for real against the test's
  database and fake Twilio; postgres: a scratch PostgreSQL database for tests that need it in either pass
"""
