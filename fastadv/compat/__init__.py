"""Drop-in replacements for other libraries' attack classes, running on fastadv."""
