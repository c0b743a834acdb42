"""The shared base of every layer: errors, media I/O, console logging, config loading, run folders
and atomic writes. It imports nothing else of the project (docs/architecture.md)."""
