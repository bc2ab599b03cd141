#!/usr/bin/env bash
# Makes sure ansible-test can bootstrap pip in its sanity venvs (scripts/collection.sh).
# ansible-test fetches get-pip-<version>.py from ci-files.testing.ansible.com once and caches
# it under ~/.ansible/test/cache. Where that host is out of reach but PyPI is not, a stand-in
# does the same job: it runs pip <version> from its wheel, downloaded from PyPI with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python

version=$("$python" - <<'EOF'
import pathlib, re
import ansible_test
source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip='([0-9.]+)'", source.read_text()).group(1))
EOF
)
cache=$HOME/.ansible/test/cache
script=$cache/get_pip_${version//./_}.py
if [ -s "$script" ]; then
  echo "ansible-test pip $version bootstrap: cached"
  exit 0
fi
mkdir -p "$cache"
if "$python" - "https://ci-files.testing.ansible.com/ansible-test/get-pip-$version.py" \
    "$script.download" 2>/dev/null <<'EOF'
import socket, sys, urllib.request
socket.setdefaulttimeout(30)
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
EOF
then
  mv "$script.download" "$script"
  echo "ansible-test pip $version bootstrap: downloaded from ci-files.testing.ansible.com"
  exit 0
fi
rm -f "$script.download"
wheels=$cache/pip-$version-wheel
"$python" -m pip download -q --no-deps --only-binary :all: -d "$wheels" "pip==$version"
cat >"$script" <<EOF
# Stand-in for get-pip-$version.py (scripts/ansible_test_pip.sh): ci-files.testing.ansible.com
# was out of reach. Runs pip $version from its PyPI wheel, as get-pip.py runs its embedded copy.
import glob
import sys

sys.path.insert(0, glob.glob("$wheels/pip-$version-*.whl")[0])
from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
EOF
echo "ansible-test pip $version bootstrap: stand-in running pip $version from its PyPI wheel"
