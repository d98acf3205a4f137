"""Personal data across the stores: erasure of contacts, the suppression list, retention (docs/personal-data.md)."""
