"""Marketing Cloud's e-mail tracking events as assets (raw, clean, publish), one chain per configured type."""
