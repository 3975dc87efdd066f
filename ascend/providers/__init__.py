"""Built-in providers: generic ones that need no cloud SDK."""
