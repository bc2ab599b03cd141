"""Print the machines of the rendered tree that run an LLM service role, comma-separated,
for `make apply-llm` (its --limit). Reads host_vars/*.yml as `make sync` wrote them.

Exit 2 with one line when infra.yml gives no machine one of those roles.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the anklume package
from anklume.errors import pipe_safe

LLM_ROLES = {"ollama_server", "open_webui"}


def llm_hosts(root: Path) -> list[str]:
    hosts = []
    for path in sorted((root / "host_vars").glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if LLM_ROLES & set(data.get("instance_roles") or []):
            hosts.append(str(data.get("instance_name", path.stem)))
    return hosts


def main() -> int:
    hosts = llm_hosts(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    if not hosts:
        print("apply-llm: no machine in infra.yml has the ollama_server or open_webui role: "
              "add one to a machine's roles (docs/gpu-llm.md)", file=sys.stderr)
        return 2
    print(",".join(hosts))
    return 0


if __name__ == "__main__":
    sys.exit(pipe_safe(main))
