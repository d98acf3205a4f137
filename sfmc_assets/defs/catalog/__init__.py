"""The account's catalog: `sfmc/catalog`, every data extension Marketing Cloud describes, browsable in the UI."""
