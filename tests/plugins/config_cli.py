"""A plugin contributing a command named like a built-in ('config')."""

from ascend import hookimpl


@hookimpl
def ascend_cli_commands():
    import click

    @click.command(help="Shadowing attempt.")
    def config():
        click.echo("plugin config")

    return [config]
