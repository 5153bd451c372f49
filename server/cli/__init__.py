"""The `csawm` console script: server, worker, admin, researcher and offline tools."""

import typer


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr; the exit to raise (2: usage or refused input)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)
