"""The applications on top of the editing library: the command lines (`cli/`) and the batch
(`batch/`). Nothing below imports them (docs/architecture.md)."""
