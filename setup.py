"""Only what pyproject.toml cannot say: a wheel carries the workflow's files that the library reads (the registries
and configs, the schemas, the published table) in medprobe/_data/, in the repository's layout, so that the `medprobe`
command works outside a checkout (medprobe.registry looks there when it is not running from one)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
WORKFLOW_FILES = ["config/*.yaml", "workflow/schemas/*.yaml", "resources/published_table.tsv", "resources/dlilp/*",
                  "resources/published_table.README.md"]


class BuildPyWithWorkflowFiles(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "medprobe" / "_data"
        for pattern in WORKFLOW_FILES:
            for source in sorted(ROOT.glob(pattern)):
                destination = target / source.relative_to(ROOT)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)


setup(cmdclass={"build_py": BuildPyWithWorkflowFiles})
