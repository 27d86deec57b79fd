"""Case Inbox: a two-way SMS inbox for legal-aid programmes, courts and probation offices."""
