"""The ``ascend`` command line: a click root group, built-in commands, plugin commands.

Built-in commands load without touching plugins, so ``ascend --help``, ``ascend --version``
and ``ascend plugins`` work even when a plugin is broken or no backend is installed. Plugin
commands (``ascend_cli_commands``) are collected the first time a command list is needed.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ascend._version import __version__
from ascend.errors import AscendError, CommandClashError

# name -> (module, attribute); imported only when the command runs or help lists it.
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "admin": ("ascend.cli.admin_cmd", "admin"),
    "config": ("ascend.cli.config_cmd", "config"),
    "images": ("ascend.cli.images_cmd", "images"),
    "jobs": ("ascend.cli.jobs_cmd", "jobs"),
    "plugins": ("ascend.cli.plugins_cmd", "plugins"),
}


class AscendGroup(click.Group):
    """Root group: lazy built-ins, then plugin commands, with clashes reported by name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plugin_commands: dict[str, tuple[click.Command, str]] | None = None
        self._loaded_from: object = None
        self.clashes: dict[str, AscendError] = {}

    def _load_plugin_commands(self) -> dict[str, tuple[click.Command, str]]:
        from ascend.plugins.manager import get_plugin_manager

        pm = get_plugin_manager()
        if self._plugin_commands is not None and self._loaded_from is pm:
            return self._plugin_commands
        self._loaded_from = pm
        self.clashes = {}
        commands, clashes = pm.cli_commands()
        for error in clashes:
            self.clashes[error.command] = error
        for name, (_, plugin) in list(commands.items()):
            if name in BUILTIN_COMMANDS or name in self.commands:
                commands.pop(name)
                self.clashes[name] = CommandClashError(
                    f"plugin {plugin!r} ({pm.distribution_label(plugin)}) contributes command "
                    f"{name!r}, which is a built-in ascend command; the plugin's command is "
                    "not added",
                    command=name,
                    plugin=plugin,
                    fix=f"rename the plugin's command, or disable it: ASCEND_DISABLED_PLUGINS={plugin}",
                )
        if pm.strict and self.clashes:
            self._loaded_from = None
            raise next(iter(self.clashes.values()))
        self._plugin_commands = commands
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(BUILTIN_COMMANDS) | set(self.commands)
        try:
            names |= set(self._load_plugin_commands())
        except AscendError as error:
            if getattr(error, "plugin", None) is None and not isinstance(error, CommandClashError):
                raise
            from ascend.plugins.manager import get_plugin_manager

            if get_plugin_manager().strict:
                raise
            _warn(error)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in BUILTIN_COMMANDS:
            module, attribute = BUILTIN_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        plugin_commands = self._load_plugin_commands()
        if cmd_name in self.clashes:
            raise click.UsageError(str(self.clashes[cmd_name]))
        found = plugin_commands.get(cmd_name)
        return found[0] if found else None

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        notes = []
        for error in self.clashes.values():
            notes.append(f"error: {error}")
        backend_note = _backend_status()
        if backend_note:
            notes.append(backend_note)
        if notes:
            with formatter.section("Notes"):
                for note in notes:
                    for line in note.splitlines():
                        formatter.write(" " * formatter.current_indent + line + "\n")


def _warn(error: BaseException) -> None:
    click.echo(f"ascend: {error}", err=True)


def _backend_status() -> str | None:
    """The no-backend guidance when it applies, for help screens (never raises)."""
    from ascend.config import AscendConfig
    from ascend.errors import NoBackendError

    try:
        config = AscendConfig.load(strict=False)
    except AscendError as error:
        return f"configuration problem: {error}"
    if isinstance(config.provider_error, NoBackendError):
        return str(config.provider_error)
    return None


@click.group(
    cls=AscendGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="ascend")
def cli() -> None:
    """Run Python functions on Kubernetes with one decorator.

    Configuration comes from .ascend.yaml (searched upward from here), the user config file and
    ASCEND_* environment variables; 'ascend config show' prints every value and its origin.
    """


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: expected errors print their message and fix, no traceback.

    The exit code comes only from ``Exit`` (and errors), never from a command's return value.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        with cli.make_context("ascend", args) as ctx:
            cli.invoke(ctx)
    except click.exceptions.Exit as done:
        return int(done.exit_code or 0)
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except AscendError as error:
        click.echo(f"ascend: error: {error}", err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
