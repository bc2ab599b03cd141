"""Download a wheelhouse for another Python: `wheelhouse.py VERSION DIR REQUIREMENT...`.

pip evaluates environment markers (`python_full_version < "3.11.3"`) with the Python
running it, even with --python-version; the instance's Python may be another patch
release, whose dependencies differ (redis needs async-timeout before 3.11.3). This runs
pip with the markers evaluated for VERSION (X.Y.Z) and wheels for that Python.
"""

import sys

from pip._internal.cli.main import main as pip_main
from pip._vendor.packaging import markers

version, dest, *requirements = sys.argv[1:]
_default = markers.default_environment


def _target_environment() -> dict[str, str]:
    env = _default()
    env.update(python_full_version=version, python_version=".".join(version.split(".")[:2]),
               implementation_version=version)
    return env


markers.default_environment = _target_environment
sys.exit(pip_main(["download", "--only-binary=:all:", "--python-version", version,
                   "--dest", dest, *requirements]))
