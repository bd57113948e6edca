"""The automations.executor proto packages (code is in the version packages)."""
