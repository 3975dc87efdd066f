"""A second plugin that also contributes a command named 'hello' (a clash)."""

from ascend import hookimpl


@hookimpl
def ascend_cli_commands():
    import click

    @click.command(help="Another hello.")
    def hello():
        click.echo("twin")

    return [hello]
