"""Sub-commands of the greenlight CLI, one module each."""
