"""One bad infra.yml per validation rule.

Each case: exit code 2, a one-line message naming the file, the line, the
dotted path, what is wrong and how to fix it, and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.gen_support import VALID, sync, tree

pytestmark = pytest.mark.unit


def _two(machine_extra: str = "", domain_extra: str = "", glob: str = "",
         tail: str = "") -> str:
    return f"""\
project_name: t
global:
  base_subnet: "10.100"
{glob}domains:
  admin:
    subnet_id: 0
    machines:
      admin-ansible:
        ip: "10.100.0.10"
  pro:
    subnet_id: 2
{domain_extra}    machines:
      pro-dev:
        ip: "10.100.2.10"
{machine_extra}{tail}"""


CASES: list[tuple[str, str, list[str], int | None]] = [
    ("unknown key with did-you-mean",
     _two(machine_extra="        tpye: lxc\n"),
     ["domains.pro.machines.pro-dev.tpye: unknown key 'tpye'", "did you mean 'type'?"], 15),
    ("unknown key without near miss",
     _two(machine_extra="        zzz: 1\n"),
     ["unknown key 'zzz'", "remove it or use one of:"], 15),
    ("unknown top-level key",
     VALID + "domain: {}\n",
     ["domain: unknown key 'domain'", "did you mean 'domains'?"], 20),
    ("wrong type: subnet_id as string",
     VALID.replace("subnet_id: 2", 'subnet_id: "2"'),
     ["domains.pro.subnet_id: expected an integer, got string '2'", "subnet_id: 2"], 15),
    ("wrong type: base_subnet as a number",
     VALID.replace('base_subnet: "10.100"', "base_subnet: 10.100"),
     ["global.base_subnet: expected a string, got number 10.1", 'base_subnet: "10.100"'], 3),
    ("wrong type: ephemeral not a boolean",
     VALID.replace("ephemeral: true", "ephemeral: maybe"),
     ["domains.pro.ephemeral: expected a boolean"], 16),
    ("wrong type: roles not a list of strings",
     VALID.replace("roles: [base_system]", "roles: [base_system, 3]"),
     ["domains.admin.machines.admin-ansible.roles[1]: expected a string, got integer 3"], 13),
    ("duplicate YAML key",
     VALID.replace('        ip: "10.100.2.10"',
                   '        ip: "10.100.2.10"\n        ip: "10.100.2.11"'),
     ["domains.pro.machines.pro-dev.ip: duplicate key 'ip' (first defined on line 19)"], 20),
    ("duplicate machine name across domains",
     VALID.replace("pro-dev:", "admin-ansible:").replace('"10.100.2.10"', '"10.100.2.11"'),
     ["domains.pro.machines.admin-ansible: machine name 'admin-ansible' is also used in "
      "domain admin (line 9)", "unique across all domains"], 18),
    ("duplicate subnet_id",
     VALID.replace("subnet_id: 2", "subnet_id: 0").replace("10.100.2.10", "10.100.0.11"),
     ["domains.pro.subnet_id: subnet_id 0 is already used by domain admin",
      "give each domain its own subnet_id"], 15),
    ("subnet_id outside 0-254",
     VALID.replace("subnet_id: 2", "subnet_id: 255"),
     ["domains.pro.subnet_id: subnet_id 255 is outside 0-254"], 15),
    ("malformed base_subnet",
     VALID.replace('"10.100"', '"10.300"'),
     ["global.base_subnet: '10.300' is not two octets", '"10.100"'], 3),
    ("ip not IPv4",
     VALID.replace("10.100.2.10", "10.100.2.300"),
     ["domains.pro.machines.pro-dev.ip: '10.100.2.300' is not an IPv4 address"], 19),
    ("ip outside the domain subnet",
     VALID.replace("10.100.2.10", "10.100.3.10"),
     ["infra.yml:19: domains.pro.machines.pro-dev.ip: 10.100.3.10 is outside the domain "
      "subnet 10.100.2.0/24; use an address in 10.100.2.1-253"], 19),
    ("ip is the network address",
     VALID.replace("10.100.2.10", "10.100.2.0"),
     ["10.100.2.0 is the network address of 10.100.2.0/24"], 19),
    ("ip is the gateway",
     VALID.replace("10.100.2.10", "10.100.2.254"),
     ["10.100.2.254 is the gateway address of domain pro"], 19),
    ("ip is the broadcast address",
     VALID.replace("10.100.2.10", "10.100.2.255"),
     ["10.100.2.255 is the broadcast address of 10.100.2.0/24"], 19),
    ("ip inside the DHCP range",
     VALID.replace("10.100.2.10", "10.100.2.150"),
     ["10.100.2.150 is inside the DHCP range 10.100.2.100-10.100.2.199",
      "outside 100-199"], 19),
    ("ip inside a custom DHCP range",
     VALID.replace('  base_subnet: "10.100"', '  base_subnet: "10.100"\n  dhcp_range: "5-20"'),
     ["10.100.0.10 is inside the DHCP range 10.100.0.5-10.100.0.20"], 11),
    ("ip used twice",
     VALID + '      pro-web:\n        ip: "10.100.2.10"\n',
     ["domains.pro.machines.pro-web.ip: 10.100.2.10 is already used by machine pro-dev "
      "(line 19)", "give each machine its own address"], 21),
    ("domain name not a DNS label",
     VALID.replace("  pro:", "  Pro_x:"),
     ["domains.Pro_x: invalid domain name: 'Pro_x' is not a lowercase DNS label"], 14),
    ("domain name too long for the bridge",
     VALID.replace("  pro:", "  professional:"),
     ["'professional' is 12 characters, more than 11", "net-professional"], 14),
    ("domain named default",
     VALID.replace("  pro:", "  default:"),
     ["domains.default: invalid domain name: 'default' is reserved"], 14),
    ("machine name not DNS-safe",
     VALID.replace("pro-dev:", "pro_dev:"),
     ["domains.pro.machines.pro_dev: invalid machine name"], 18),
    ("machine name ending with a hyphen",
     VALID.replace("pro-dev:", "pro-dev-:"),
     ["invalid machine name: 'pro-dev-'"], 18),
    ("machine name too long",
     VALID.replace("pro-dev:", "p" * 64 + ":"),
     ["is 64 characters, more than Incus's 63"], 18),
    ("profile not defined in the domain",
     _two(machine_extra="        profiles: [default, gpu-profile]\n"),
     ["domains.pro.machines.pro-dev.profiles[1]: profile 'gpu-profile' is not defined in "
      "domain pro", "define it under domains.pro.profiles"], 15),
    ("profile name not DNS-safe",
     _two(domain_extra="    profiles:\n      GPU_x: {}\n"),
     ["domains.pro.profiles.GPU_x: invalid profile name"], 13),
    ("type neither lxc nor vm",
     _two(machine_extra="        type: docker\n"),
     ["domains.pro.machines.pro-dev.type: 'docker' is not one of lxc, vm"], 15),
    ("gpu_policy exclusive with two GPU instances",
     VALID.replace('        ip: "10.100.2.10"', '        ip: "10.100.2.10"\n        gpu: true')
     .replace("roles: [base_system]", "roles: [base_system]\n        gpu: true"),
     ["domains.pro.machines.pro-dev: second GPU instance (first: admin-ansible) while "
      "global.gpu_policy is exclusive"], 19),
    ("a gpu device through a profile counts as a GPU instance",
     _two(domain_extra="    profiles:\n      nv:\n        devices:\n          g: {type: gpu}\n",
          machine_extra="        profiles: [nv]\n")
     .replace('        ip: "10.100.0.10"', '        ip: "10.100.0.10"\n        gpu: true'),
     ["second GPU instance (first: admin-ansible)"], None),
    ("gpu_policy not a known value",
     VALID.replace('  base_subnet: "10.100"', '  base_subnet: "10.100"\n  gpu_policy: shard'),
     ["global.gpu_policy: 'shard' is not one of exclusive, shared", "did you mean 'shared'?"],
     4),
    ("admin_domain set to a missing domain",
     VALID.replace('  base_subnet: "10.100"', '  base_subnet: "10.100"\n  admin_domain: admn'),
     ["global.admin_domain: 'admn' is not a domain", "did you mean 'admin'?"], 4),
    ("dhcp_range malformed",
     VALID.replace('  base_subnet: "10.100"', '  base_subnet: "10.100"\n  dhcp_range: "200-100"'),
     ["global.dhcp_range: '200-100' is not a range of host octets"], 4),
    ("snapshot schedule not cron",
     _two(machine_extra="        snapshots_schedule: every day\n"),
     ["snapshots_schedule: 'every day' is not a 5-field cron expression"], 15),
    ("snapshot expiry malformed",
     _two(domain_extra="    snapshots_expiry: two weeks\n"),
     ["domains.pro.snapshots_expiry: 'two weeks' is not a duration like 2w"], 12),
    ("network policy to an unknown name",
     VALID + "network_policies:\n  - {from: pro, to: admin-ansibel}\n",
     ["network_policies[0].to: 'admin-ansibel' is neither a domain nor a machine",
      "did you mean 'admin-ansible'?"], 21),
    ("network policy: ports with icmp",
     VALID + "network_policies:\n  - {from: pro, to: admin, protocol: icmp, ports: [22]}\n",
     ["network_policies[0].ports: icmp has no ports"], 21),
    ("network policy: port out of range",
     VALID + "network_policies:\n  - {from: pro, to: admin, protocol: tcp, ports: [70000]}\n",
     ["network_policies[0].ports[0]: 70000 is not a port"], 21),
    ("network policy: missing to",
     VALID + "network_policies:\n  - {from: pro}\n",
     ["network_policies[0]: missing required key 'to'"], 21),
    ("network policy from the host",
     VALID + "network_policies:\n  - {from: host, to: pro, ports: [22]}\n",
     ["network_policies[0].from: the host cannot be a policy source", "to: host"], 21),
    ("network policy to host while a domain is called host",
     VALID.replace("  pro:\n", "  host:\n").replace("pro-dev:", "host-dev:")
     + "network_policies:\n  - {from: admin, to: host, ports: [22]}\n",
     ["network_policies[0].to: 'host' names both the host and a domain or machine"], 21),
    ("allow_spoofing not a boolean",
     _two(machine_extra='        allow_spoofing: "yes"\n'),
     ["allow_spoofing: expected a boolean (true or false), got string 'yes'"], 15),
    ("nat not a boolean",
     _two(domain_extra='    nat: "no"\n'),
     ["domains.pro.nat: expected a boolean (true or false), got string 'no'",
      "nat: false"], 12),
    ("target not a string",
     _two(machine_extra="        target: 2\n"),
     ["domains.pro.machines.pro-dev.target: expected a string, got integer 2"], 15),
    ("target not a member name",
     _two(domain_extra='    target: "node 1"\n'),
     ["domains.pro.target: invalid cluster member name 'node 1'", "incus cluster list"], 12),
    ("missing subnet_id",
     VALID.replace("    subnet_id: 2\n", ""),
     ["domains.pro: missing required key 'subnet_id'"], 14),
    ("config value not a scalar",
     VALID.replace('security.nesting: "true"', "security.nesting: [1]"),
     ["config.security.nesting: config value must be a string, got list"], 12),
    ("device without a type",
     _two(machine_extra="        devices:\n          data: {path: /data}\n"),
     ["devices.data: device 'data' has no type"], 16),
    ("vm with too little memory",
     _two(machine_extra='        type: vm\n        config:\n          limits.memory: "512MiB"\n'),
     ["config.limits.memory: a vm needs at least 1GiB of memory, got 512MiB"], 17),
    ("vm with zero cpu",
     _two(machine_extra='        type: vm\n        config:\n          limits.cpu: "0"\n'),
     ["config.limits.cpu: a vm needs at least 1 CPU"], 17),
    ("machine named like a domain",
     VALID.replace("pro-dev:", "admin:"),
     ["domains.pro.machines.admin: machine 'admin' has the name of a domain"], 18),
    ("project_name not a name",
     VALID.replace("project_name: test", "project_name: My_Infra"),
     ["project_name: invalid project_name: 'My_Infra' is not a lowercase DNS label",
      "user.anklume.owner"], 1),
    ("project_name empty",
     VALID.replace("project_name: test", 'project_name: ""'),
     ["project_name: invalid project_name: '' is not a lowercase DNS label"], 1),
    ("role that does not exist",
     VALID.replace("roles: [base_system]", "roles: [base-system]"),
     ["domains.admin.machines.admin-ansible.roles[0]: unknown role 'base-system'",
      "did you mean 'base_system'?"], 13),
    ("empty file", "", ["infra.yml: the file is empty"], None),
    ("comment-only file", "# nothing\n", ["infra.yml: the file is empty"], None),
    ("top level is a list", "- a\n- b\n", ["the top level must be a mapping, got list"], None),
    ("invalid YAML syntax",
     VALID.replace("    subnet_id: 2", "    subnet_id: [2"),
     ["infra.yml:", "invalid YAML", "fix the syntax at that line"], None),
    ("unsupported tag", VALID.replace('"10.100"', "!!python/name:os.system ''"),
     ["unsupported YAML tag"], 3),
]


@pytest.mark.parametrize(("text", "expected", "line"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_file_is_rejected_with_one_clear_line(tmp_path: Path, text: str,
                                                  expected: list[str], line: int | None) -> None:
    result = sync(tmp_path, text)
    assert result.code == 2, result
    assert "Traceback" not in result.err
    errors = [e for e in result.err.splitlines() if not e.startswith("warning:")]
    assert errors, result.err
    matching = [e for e in errors if all(x in e for x in expected)]
    assert matching, f"{expected} not in {errors}"
    if line is not None:
        assert any(f"infra.yml:{line}: " in e for e in matching), matching
    assert tree(tmp_path) == {}, "nothing may be written on error"


@pytest.mark.unit
def test_all_errors_of_a_file_are_reported_in_one_run(tmp_path: Path) -> None:
    text = (VALID.replace("10.100.2.10", "10.100.9.10")
            .replace("subnet_id: 0", "subnet_id: 300")
            .replace("ephemeral: true", "ephemeral: true\n    colour: red"))
    result = sync(tmp_path, text)
    assert result.code == 2
    errors = result.err.splitlines()
    assert len(errors) == 3, errors
    assert any("subnet_id 300" in e for e in errors)
    assert any("colour" in e for e in errors)
    assert any("10.100.9.10 is outside" in e for e in errors)


def test_every_error_fits_on_one_line_with_a_fix(tmp_path: Path) -> None:
    result = sync(tmp_path, _two(machine_extra="        tpye: lxc\n        ip: x\n"))
    for line in result.err.splitlines():
        assert line.startswith(str(tmp_path / "infra.yml") + ":")
        assert "; " in line, f"no fix in: {line}"


def test_gpu_policy_shared_warns_but_syncs(tmp_path: Path) -> None:
    text = (VALID.replace('  base_subnet: "10.100"',
                          '  base_subnet: "10.100"\n  gpu_policy: shared')
            .replace('        ip: "10.100.2.10"', '        ip: "10.100.2.10"\n        gpu: true')
            .replace("roles: [base_system]", "roles: [base_system]\n        gpu: true"))
    result = sync(tmp_path, text)
    assert result.code == 0, result
    assert "warning:" in result.err and "2 instances share the GPU" in result.err
    assert "host_vars/pro-dev.yml" in tree(tmp_path)
