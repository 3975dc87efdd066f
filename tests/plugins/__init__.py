"""Real plugin modules used by the tests, each showing one kind of plugin (good or broken)."""
