"""The typer CLI: thin commands that call the core and render with rich. One module per command."""
