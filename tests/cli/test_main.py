"""The CLI's root: which module each command comes from, so a command imports only its own."""

from __future__ import annotations

import importlib

from simulator.cli.flags import Command
from simulator.cli.main import COMMAND_HOMES, COMMAND_MODULES, MANAGEMENT, build_root


def test_command_homes_name_the_modules_that_register_each_command() -> None:
    registered: dict[str, set[str]] = {}
    for module_name in COMMAND_MODULES:
        root = Command("docker")
        groups = {name: Command(name) for name in MANAGEMENT}
        for group in groups.values():
            root.add(group)
        importlib.import_module(f"simulator.cli.commands.{module_name}").register(root, groups)
        for command in root.subcommands:
            if command.name not in MANAGEMENT or command.subcommands:
                registered.setdefault(command.name, set()).add(module_name)
    assert {name: set(homes) for name, homes in COMMAND_HOMES.items()} == registered


def test_a_command_built_from_its_home_alone_is_the_one_the_whole_tree_has() -> None:
    whole, _ = build_root()
    for name, homes in COMMAND_HOMES.items():
        partial, _ = build_root(homes)
        assert partial.find(name).help_text(80) == whole.find(name).help_text(80), name
