"""Installs ``ringtrace-children.pth`` into site-packages beside the packages.

The rest of the configuration is in pyproject.toml. The ``.pth`` line runs at
every interpreter start-up and does nothing unless ``RINGTRACE_CHILDREN`` is
set (one dictionary lookup): then it starts recording in a child process of a
``pytest --ringtrace`` session (see ``instrument/childstart.py``), as
coverage.py's ``.pth`` does for ``COVERAGE_PROCESS_START``.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "ringtrace-children.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        self.copy_file(os.path.join(here, PTH), os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildWithPth})
