"""Providers that carry texts: the Twilio adapter and the built-in simulator, behind `base.Provider`."""
