"""Sub-commands of `stoker`, one module each, imported lazily by `stoker_agent.cli`."""
