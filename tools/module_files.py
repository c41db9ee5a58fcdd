"""Print workflow/module-files.txt: the files beside the Snakefiles that the workflow reads (the medprobe library, the
registries and configs, the schemas, the published table). A gitfile()/github() module copies exactly these.

    python tools/module_files.py > workflow/module-files.txt
"""
import subprocess
import sys
from pathlib import Path

HEADER = """\
# Files beside the Snakefiles that the workflow reads. A gitfile()/github() module copies them once into
# .snakemake/medprobe/<version>-<hash>/ (workflow/rules/common.smk); tests/test_deploy.py checks the list.
# Refresh: python tools/module_files.py > workflow/module-files.txt
"""
PATTERNS = ["src/medprobe/*.py", "src/medprobe/**/*.py", "config/*.yaml", "workflow/schemas/*.yaml",
            "resources/published_table.tsv", "resources/published_table.README.md", "resources/dlilp/*"]


def module_files(root: Path) -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--", *PATTERNS], cwd=root, check=True, capture_output=True,
                            text=True).stdout.split()
    return sorted(set(listed))


if __name__ == "__main__":
    sys.stdout.write(HEADER + "".join(f"{path}\n" for path in module_files(Path(__file__).resolve().parents[1])))
