"""What the test app is configured with: the address the public knows it by, and its Twilio account.

The `settings` fixture builds the app's settings from these; signed webhooks and browsers use them too.
"""

from __future__ import annotations

# An https public URL while the test transport speaks plain http: like a TLS-terminating proxy.
PUBLIC_URL = "https://inbox.example.org"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"
