"""A plugin contributing a CLI command group named 'hello'."""

from ascend import hookimpl


@hookimpl
def ascend_cli_commands():
    import click

    @click.group(help="Greetings from the hello plugin.")
    def hello():
        pass

    @hello.command(help="Say hello.")
    @click.argument("name", default="world")
    def say(name):
        click.echo(f"hello, {name}")

    return [hello]
