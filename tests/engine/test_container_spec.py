"""The create body's translation to an OCI config.json: Docker's decoding errors and checks,
Slipway's allowlist, Docker's Entrypoint/Cmd/Env/User rules, and one real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.engine.container_spec import (
    CreateError,
    CreateRequest,
    build_spec,
    check_allowed,
    container_mounts,
    merge_image_config,
    parse_create_body,
    process_args,
    process_env,
    resolve_user,
)
from simulator.images.oci import ImageConfig, RunConfig
from simulator.runtime import defaults

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _image(**run_config: object) -> ImageConfig:
    return ImageConfig(config=RunConfig(**run_config))  # type: ignore[arg-type]


BUSYBOX = _image(env=[DEFAULT_PATH], cmd=["sh"])
NGINX = _image(
    env=[DEFAULT_PATH, "NGINX_VERSION=1.22"],
    entrypoint=["/docker-entrypoint.sh"],
    cmd=["nginx", "-g", "daemon off;"],
    stop_signal="SIGQUIT",
    exposed_ports=["80/tcp"],
    labels={"maintainer": "nginx"},
)


def _request(**fields: object) -> CreateRequest:
    body = {"Image": "busybox", **fields}
    return parse_create_body(body)


def _error(body: object) -> CreateError:
    with pytest.raises(CreateError) as caught:
        parse_create_body(body)
    return caught.value


# -- Decoding: Go's messages ------------------------------------------------------------------

DECODING_ERRORS = [
    ([], "json: cannot unmarshal array into Go value of type container.CreateRequest"),
    ("busybox", "json: cannot unmarshal string into Go value of type container.CreateRequest"),
    (
        {"Image": 5},
        "json: cannot unmarshal number into Go struct field CreateRequest.Image of type string",
    ),
    (
        {"Image": "busybox", "Env": "A=1"},
        "json: cannot unmarshal string into Go struct field CreateRequest.Env of type []string",
    ),
    (
        {"Image": "busybox", "Env": ["A=1", 2]},
        "json: cannot unmarshal number into Go struct field CreateRequest.Env of type string",
    ),
    (
        {"Image": "busybox", "Cmd": 5},
        "json: cannot unmarshal number into Go struct field CreateRequest.Cmd of type string",
    ),
    (
        {"Image": "busybox", "Entrypoint": {"sh": 1}},
        "json: cannot unmarshal object into Go struct field CreateRequest.Entrypoint of type "
        "string",
    ),
    (
        {"Image": "busybox", "Tty": "yes"},
        "json: cannot unmarshal string into Go struct field CreateRequest.Tty of type bool",
    ),
    (
        {"Image": "busybox", "Labels": {"a": 1}},
        "json: cannot unmarshal number into Go struct field CreateRequest.Labels of type string",
    ),
    (
        {"Image": "busybox", "ExposedPorts": ["80/tcp"]},
        "json: cannot unmarshal array into Go struct field CreateRequest.ExposedPorts of type "
        "nat.PortSet",
    ),
    (
        {"Image": "busybox", "StopTimeout": "10"},
        "json: cannot unmarshal string into Go struct field CreateRequest.StopTimeout of type int",
    ),
    (
        {"Image": "busybox", "Healthcheck": {"Interval": "5s"}},
        "json: cannot unmarshal string into Go struct field HealthcheckConfig.Healthcheck.Interval "
        "of type time.Duration",
    ),
    (
        {"Image": "busybox", "HostConfig": "x"},
        "json: cannot unmarshal string into Go struct field CreateRequest.HostConfig of type "
        "container.HostConfig",
    ),
    (
        {"Image": "busybox", "HostConfig": {"Memory": "64m"}},
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type "
        "int64",
    ),
    (
        {"Image": "busybox", "HostConfig": {"Memory": 1.5}},
        "json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of "
        "type int64",
    ),
    (
        {"Image": "busybox", "HostConfig": {"BlkioWeight": 70000}},
        "json: cannot unmarshal number 70000 into Go struct field "
        "HostConfig.HostConfig.BlkioWeight of type uint16",
    ),
    (
        {"Image": "busybox", "HostConfig": {"Binds": "/a:/b"}},
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Binds of type "
        "[]string",
    ),
    (
        {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}},
        "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings."
        "HostPort of type string",
    ),
    (
        {"Image": "busybox", "HostConfig": {"RestartPolicy": "always"}},
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.RestartPolicy "
        "of type container.RestartPolicy",
    ),
    (
        {"Image": "busybox", "HostConfig": {"RestartPolicy": {"MaximumRetryCount": "3"}}},
        "json: cannot unmarshal string into Go struct field RestartPolicy.HostConfig."
        "RestartPolicy.MaximumRetryCount of type int",
    ),
    (
        {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "ReadOnly": "yes"}]}},
        "json: cannot unmarshal string into Go struct field Mount.HostConfig.Mounts.ReadOnly of "
        "type bool",
    ),
    (
        {"Image": "busybox", "HostConfig": {"PidsLimit": "100"}},
        "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.PidsLimit of "
        "type int64",
    ),
    (
        {"Image": "busybox", "HostConfig": {"CapAdd": [1]}},
        "json: cannot unmarshal array into Go struct field HostConfig.HostConfig.CapAdd of type "
        "string",
    ),
    (
        {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}},
        "json: cannot unmarshal string into Go struct field EndpointSettings.NetworkingConfig."
        "EndpointsConfig.Aliases of type []string",
    ),
]


@pytest.mark.parametrize(("body", "message"), DECODING_ERRORS)
def test_a_field_of_the_wrong_type_is_named_as_gos_decoder_names_it(body, message):
    error = _error(body)
    assert error.status == 400
    assert error.message == f"invalid JSON: {message}"


def test_a_body_without_any_config_field_is_an_empty_config():
    for body in (None, {}, {"HostConfig": {}}, {"Unknown": 1}):
        error = _error(body)
        assert (error.status, error.message) == (
            400,
            "config cannot be empty in order to create a container",
        )


def test_field_names_match_without_regard_to_case_and_unknown_fields_are_ignored():
    request = parse_create_body(
        {"image": "busybox", "cmd": "echo hi", "hostconfig": {"memory": 8 << 20}, "Extra": 1}
    )
    assert request.config["Image"] == "busybox"
    assert request.config["Cmd"] == ["echo hi"]
    assert request.host_config["Memory"] == 8 << 20


def test_every_field_has_gos_zero_value_when_absent_and_nulls_leave_it_so():
    request = _request(Env=None, Labels=None, HostConfig={"Binds": None, "LogConfig": None})
    assert request.config["Env"] is None
    assert request.config["Tty"] is False
    assert request.config["Entrypoint"] is None
    assert request.host_config["LogConfig"] == {"Type": "", "Config": None}
    assert request.host_config["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert request.host_config["ShmSize"] == defaults_shm_size()
    assert request.host_config["ConsoleSize"] == [0, 0]
    assert request.host_config["NetworkMode"] == "bridge"
    assert request.host_config["IpcMode"] == "private"
    assert request.networking_config == {"EndpointsConfig": None}


def defaults_shm_size() -> int:
    options = next(m for m in defaults.MOUNTS if m["destination"] == "/dev/shm")["options"]
    return int(next(o for o in options if o.startswith("size="))[5:])


def test_dockerd_fills_in_swap_as_twice_the_memory_and_a_64mb_shm():
    request = _request(HostConfig={"Memory": 32 << 20, "PidsLimit": -1})
    assert request.host_config["MemorySwap"] == 64 << 20
    assert request.host_config["ShmSize"] == 64 << 20
    assert request.host_config["PidsLimit"] is None


# -- Docker's create-time checks --------------------------------------------------------------

DOCKER_CHECKS = [
    (
        {"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}},
        "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
        "'on-failure', or 'unless-stopped'",
    ),
    (
        {"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}},
        "invalid restart policy: maximum retry count can only be used with 'on-failure'",
    ),
    (
        {"HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}},
        "invalid restart policy: maximum retry count cannot be negative",
    ),
    (
        {"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
        "can't create 'AutoRemove' container with restart policy",
    ),
    (
        {"HostConfig": {"PortBindings": {"99999/tcp": [{"HostPort": "80"}]}}},
        'invalid port specification: "99999"',
    ),
    (
        {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "http"}]}}},
        'invalid port specification: "http"',
    ),
    (
        {"HostConfig": {"PortBindings": {"8000-8010/tcp": [{"HostPort": "8000-8010"}]}}},
        'invalid port specification: "8000-8010"',
    ),
    (
        {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "90-80"}]}}},
        'invalid port specification: "90-80"',
    ),
    ({"Volumes": {"data": {}}}, "invalid mount path: 'data' mount path must be absolute"),
    ({"HostConfig": {"Memory": 1 << 20}}, "Minimum memory limit allowed is 6MB"),
    (
        {"HostConfig": {"Memory": 64 << 20, "MemorySwap": 32 << 20}},
        "Minimum memoryswap limit should be larger than memory limit, see usage",
    ),
    (
        {"HostConfig": {"MemorySwap": 64 << 20}},
        "You should always set the Memory limit when using Memoryswap limit, see usage",
    ),
    (
        {"HostConfig": {"NanoCpus": 500_000_000, "CpuPeriod": 100_000}},
        "Conflicting options: Nano CPUs and CPU Period cannot both be set",
    ),
    (
        {"HostConfig": {"NanoCpus": 1_000_000 * 1_000_000_000}},
        "range of CPUs is from 0.01 to",
    ),
    (
        {"HostConfig": {"CpuPeriod": 10}},
        "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    ),
    ({"HostConfig": {"CpuQuota": 10}}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
    (
        {"HostConfig": {"CpuShares": -2}},
        "invalid CPU shares (-2): value must be a positive integer",
    ),
    ({"HostConfig": {"CpusetCpus": "0-x"}}, "Invalid value 0-x for cpuset cpus"),
    ({"HostConfig": {"CpusetCpus": "4096"}}, "Requested CPUs are not available - requested 4096"),
    ({"HostConfig": {"ShmSize": -1}}, "SHM size can not be less than 0"),
    (
        {"HostConfig": {"OomScoreAdj": 5000}},
        "Invalid value 5000, range for oom score adj is [-1000, 1000]",
    ),
    ({"HostConfig": {"IpcMode": "bogus"}}, "invalid IPC mode: bogus"),
    ({"HostConfig": {"PidMode": "bogus"}}, "invalid PID mode: bogus"),
    ({"HostConfig": {"CgroupnsMode": "bogus"}}, "invalid cgroup namespace mode: bogus"),
    (
        {"HostConfig": {"NetworkMode": "container:"}},
        "invalid network mode: invalid container format container:<name|id>",
    ),
    (
        {"Hostname": "web", "HostConfig": {"NetworkMode": "container:db"}},
        "conflicting options: hostname and the network mode",
    ),
    (
        {"HostConfig": {"Isolation": "hyperv"}},
        "invalid isolation (hyperv): linux only supports 'default'",
    ),
    (
        {"HostConfig": {"CapAdd": ["NOT_A_CAP"]}},
        'invalid CapAdd: unknown capability: "CAP_NOT_A_CAP"',
    ),
    (
        {"HostConfig": {"CapDrop": ["cap_bogus"]}},
        'invalid CapDrop: unknown capability: "CAP_BOGUS"',
    ),
    (
        {"HostConfig": {"Annotations": {"": "x"}}},
        "invalid Annotations: the empty string is not permitted as an annotation key",
    ),
    ({"HostConfig": {"ExtraHosts": ["nocolon"]}}, 'bad format for add-host: "nocolon"'),
    (
        {"HostConfig": {"ExtraHosts": ["db:not-an-ip"]}},
        'invalid IP address in add-host: "not-an-ip"',
    ),
    ({"HostConfig": {"Runtime": "kata"}}, "unknown or invalid runtime name: kata"),
    (
        {"HostConfig": {"LogConfig": {"Type": "syslog"}}},
        "logger: no log driver named 'syslog' is registered",
    ),
    ({"HostConfig": {"SecurityOpt": ["bogus"]}}, 'invalid --security-opt 1: "bogus"'),
    ({"HostConfig": {"SecurityOpt": ["foo=bar"]}}, 'invalid --security-opt 2: "foo=bar"'),
    (
        {"HostConfig": {"SecurityOpt": ["no-new-privileges=maybe"]}},
        'invalid --security-opt 2: "no-new-privileges=maybe"',
    ),
    (
        {"WorkingDir": "relative/dir"},
        "the working directory 'relative/dir' is invalid, it needs to be an absolute path",
    ),
    ({"StopSignal": "SIGNOPE"}, "invalid signal: SIGNOPE"),
    ({"Env": ["=value"]}, "invalid environment variable: =value"),
    ({"Hostname": "bad_host!"}, "invalid hostname format: bad_host!"),
    (
        {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}},
        "Interval in Healthcheck cannot be less than 1ms",
    ),
    (
        {"Healthcheck": {"Retries": -1}},
        "Retries in Healthcheck cannot be negative",
    ),
    ({"HostConfig": {"Binds": [":/data"]}}, "invalid volume specification: ':/data'"),
    ({"HostConfig": {"Binds": ["/data:rw"]}}, "invalid volume specification: '/data:rw'"),
    ({"HostConfig": {"Binds": ["/src:/dst:bogus"]}}, "invalid mode: bogus"),
    ({"HostConfig": {"Binds": ["/src:/dst:ro,rw"]}}, "invalid mode: ro,rw"),
    (
        {"HostConfig": {"Binds": ["/src:relative"]}},
        "invalid volume specification: '/src:relative': invalid mount config for type \"bind\": "
        "invalid mount path: 'relative' mount path must be absolute",
    ),
    (
        {"HostConfig": {"Binds": ["/src:/"]}},
        "invalid volume specification: '/src:/': invalid mount config for type \"bind\": "
        "invalid specification: destination can't be '/'",
    ),
    (
        {"HostConfig": {"Binds": ["x:/data"]}},
        "volume name is too short, names should be at least two alphanumeric characters",
    ),
    (
        {"HostConfig": {"Binds": ["my vol:/data"]}},
        '"my vol" includes invalid characters for a local volume name',
    ),
    (
        {"HostConfig": {"Binds": ["/a:/data", "/b:/data/"]}},
        "Duplicate mount point: /data",
    ),
    (
        {"HostConfig": {"Binds": ["/a:/run"], "Tmpfs": {"/run": ""}}},
        "Duplicate mount point: /run",
    ),
    (
        {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/a"}]}},
        'invalid mount config for type "bind": field Target must not be empty',
    ),
    (
        {"HostConfig": {"Mounts": [{"Type": "bind", "Target": "/data"}]}},
        'invalid mount config for type "bind": field Source must not be empty',
    ),
    (
        {"HostConfig": {"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/t"}]}},
        'invalid mount config for type "tmpfs": field Source must not be specified',
    ),
    (
        {"HostConfig": {"Mounts": [{"Type": "nfs", "Source": "x", "Target": "/t"}]}},
        'invalid mount config for type "nfs": mount type unknown',
    ),
    (
        {"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/t", "ReadOnly": True}]}},
        'invalid mount config for type "volume": must not set ReadOnly mode when using '
        "anonymous volumes",
    ),
    (
        {
            "HostConfig": {
                "Mounts": [{"Type": "volume", "Source": "v1", "Target": "/t", "BindOptions": {}}]
            }
        },
        'BindOptions must not be specified on mount type "volume"',
    ),
    (
        {
            "HostConfig": {
                "Mounts": [
                    {
                        "Type": "volume",
                        "Source": "v1",
                        "Target": "/t",
                        "VolumeOptions": {"Subpath": "../up"},
                    }
                ]
            }
        },
        'invalid mount config for type "volume": subpath must be a relative path within the volume',
    ),
    (
        {
            "HostConfig": {
                "Mounts": [
                    {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Options": [["nosuid"]]}}
                ]
            }
        },
        'invalid mount config for type "tmpfs": invalid option: nosuid',
    ),
    ({"HostConfig": {"Tmpfs": {"/run": "size=1m,bind"}}}, 'invalid tmpfs option ["bind"]'),
    (
        {"HostConfig": {"Tmpfs": {"run": ""}}},
        "invalid mount path: 'run' mount path must be absolute",
    ),
    (
        {"NetworkingConfig": {"EndpointsConfig": {"mynet": None}}},
        "invalid config for network mynet: EndpointsConfig is nil",
    ),
    ({"Cmd": ["echo", "a\x00b"]}, "invalid argument 'a\\x00b': it contains a NUL byte"),
]


@pytest.mark.parametrize(("fields", "message"), DOCKER_CHECKS)
def test_dockerd_refuses_a_bad_parameter_with_400_and_its_own_words(fields, message):
    error = _error({"Image": "busybox", **fields})
    assert error.status == 400
    assert error.message.startswith(message), error.message


def test_port_bindings_take_a_host_port_range_or_none():
    bindings = {"80/tcp": [{"HostPort": "8080-8090"}], "53/udp": [{"HostPort": ""}], "443": None}
    assert _request(HostConfig={"PortBindings": bindings}).host_config["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080-8090"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
        "443": None,
    }


def test_binds_name_host_paths_named_volumes_and_anonymous_ones():
    mounts = _request(HostConfig={"Binds": ["/srv:/srv", "cache:/cache:ro", "/anon"]}).mounts
    assert [(m.type, m.source, m.destination, m.read_only) for m in mounts] == [
        ("bind", "/srv", "/srv", False),
        ("volume", "cache", "/cache", True),
        ("volume", "", "/anon", False),
    ]
    assert [m.volume_key for m in mounts[1:]] == ["cache", "/anon"]


def test_signals_read_by_name_or_number_as_docker_reads_them():
    for signal_name in ("SIGTERM", "term", "9", "SIGRTMIN+3", "SIGQUIT"):
        _request(StopSignal=signal_name)


# -- The allowlist ----------------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    (allowed / "data").mkdir(parents=True)
    (allowed / "file.txt").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (allowed / "escape").symlink_to(outside)
    (allowed / "to-etc").symlink_to("/etc")
    return {"allowed": allowed, "outside": outside}


def _refusal(host_config: dict, allowed: list[str]) -> CreateError:
    request = _request(HostConfig=host_config)
    with pytest.raises(CreateError) as caught:
        check_allowed(request, allowed)
    return caught.value


REFUSALS = [
    ({"Privileged": True}, "privileged mode is not allowed"),
    ({"CapAdd": ["SYS_ADMIN"]}, "capability CAP_SYS_ADMIN is not allowed"),
    ({"CapAdd": ["CAP_NET_ADMIN"]}, "capability CAP_NET_ADMIN is not allowed"),
    ({"CapAdd": ["ALL"]}, "adding ALL capabilities is not allowed"),
    (
        {"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
        "host devices (--device) are not allowed",
    ),
    ({"DeviceCgroupRules": ["c 1:3 rwm"]}, "device cgroup rules (--device-cgroup-rule)"),
    ({"DeviceRequests": [{"Count": -1}]}, "device requests (--gpus) are not allowed"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, 'security option "seccomp=unconfined"'),
    ({"SecurityOpt": ["seccomp:unconfined"]}, 'security option "seccomp:unconfined"'),
    (
        {"SecurityOpt": ['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']},
        "custom seccomp profiles are not allowed",
    ),
    ({"SecurityOpt": ["no-new-privileges=false"]}, 'security option "no-new-privileges=false"'),
    ({"SecurityOpt": ["no-new-privileges:false"]}, 'security option "no-new-privileges:false"'),
    ({"SecurityOpt": ["apparmor=unconfined"]}, 'security option "apparmor=unconfined"'),
    ({"SecurityOpt": ["label=disable"]}, 'security option "label=disable"'),
    ({"SecurityOpt": ["label:disable"]}, 'security option "label:disable"'),
    ({"SecurityOpt": ["label=type:spc_t"]}, 'security option "label=type:spc_t"'),
    ({"SecurityOpt": ["writable-cgroups=true"]}, 'security option "writable-cgroups=true"'),
    ({"MaskedPaths": []}, "overriding MaskedPaths is not allowed"),
    ({"MaskedPaths": ["/proc/kcore"]}, "overriding MaskedPaths is not allowed"),
    ({"ReadonlyPaths": []}, "overriding ReadonlyPaths is not allowed"),
    ({"ReadonlyPaths": ["/proc/bus"]}, "overriding ReadonlyPaths is not allowed"),
    ({"PidMode": "host"}, "--pid=host is not allowed"),
    ({"IpcMode": "host"}, "--ipc=host is not allowed"),
    ({"UTSMode": "host"}, "--uts=host is not allowed"),
    ({"UsernsMode": "host"}, "--userns=host is not allowed"),
    ({"CgroupnsMode": "host"}, "--cgroupns=host is not allowed"),
    ({"Sysctls": {"kernel.core_pattern": "|/tmp/x"}}, 'sysctl "kernel.core_pattern"'),
    ({"Sysctls": {"kernel.hostname": "x"}}, 'sysctl "kernel.hostname"'),
    ({"Sysctls": {"vm.overcommit_memory": "1"}}, 'sysctl "vm.overcommit_memory"'),
    ({"Sysctls": {"net.core.somaxconn": "1024"}}, 'sysctl "net.core.somaxconn"'),
    ({"Sysctls": {"net.netfilter.nf_conntrack_max": "1"}}, 'sysctl "net.netfilter.'),
    ({"Sysctls": {"net/../kernel/core_pattern": "x"}}, 'sysctl "net/../kernel/core_pattern"'),
    ({"Sysctls": {"net..ipv4": "x"}}, 'sysctl "net..ipv4"'),
    ({"CgroupParent": "/"}, "--cgroup-parent is not allowed"),
    ({"Cgroup": "container:other"}, "--cgroup is not allowed"),
    ({"OomScoreAdj": -1000}, "a negative --oom-score-adj is not allowed"),
    ({"Annotations": {"org.slipway.log.path": "/etc/passwd"}}, 'annotation "org.slipway.log.path"'),
    ({"Binds": ["/etc:/host-etc"]}, 'bind mount source "/etc" is not allowed'),
    ({"Binds": ["/:/host"]}, 'bind mount source "/" is not allowed'),
    ({"Binds": ["{allowed}/../outside:/x"]}, "is not allowed: it resolves outside"),
    ({"Binds": ["{allowed}/escape:/x"]}, 'bind mount source "{allowed}/escape" is not allowed'),
    ({"Binds": ["{allowed}/to-etc/shadow:/x:ro"]}, '/to-etc/shadow" is not allowed'),
    (
        {"Mounts": [{"Type": "bind", "Source": "{allowed}/escape", "Target": "/x"}]},
        'bind mount source "{allowed}/escape" is not allowed',
    ),
    (
        {"Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}]},
        'bind mount source "/var/run/docker.sock" is not allowed',
    ),
    ({"Binds": ["{allowed}/data:/data:rshared"]}, "rshared mount propagation is not allowed"),
    ({"Binds": ["{allowed}/data:/proc/sys"]}, "mounting over /proc/sys is not allowed"),
    ({"Tmpfs": {"/sys/fs/cgroup": ""}}, "mounting over /sys/fs/cgroup is not allowed"),
    (
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "hostroot",
                    "Target": "/x",
                    "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"o": "bind"}}},
                }
            ]
        },
        'volume driver option "o" is not allowed',
    ),
    (
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "hostroot",
                    "Target": "/x",
                    "VolumeOptions": {"DriverConfig": {"Options": {"device": "/"}}},
                }
            ]
        },
        'volume driver option "device" is not allowed',
    ),
    (
        {
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": "disk",
                    "Target": "/x",
                    "VolumeOptions": {"DriverConfig": {"Options": {"type": "ext4"}}},
                }
            ]
        },
        'volume driver option "type" is not allowed',
    ),
]


@pytest.mark.parametrize(("host_config", "message"), REFUSALS)
def test_the_allowlist_refuses_with_403(roots, host_config, message):
    allowed = str(roots["allowed"])
    host_config = json.loads(json.dumps(host_config).replace("{allowed}", allowed))
    error = _refusal(host_config, [allowed])
    assert error.status == 403
    assert message.replace("{allowed}", allowed) in error.message, error.message


ALLOWED = [
    {"CapDrop": ["ALL"], "CapAdd": ["CHOWN", "NET_BIND_SERVICE"]},
    {"CapAdd": ["cap_kill"], "CapDrop": ["NET_RAW"]},
    {"SecurityOpt": ["no-new-privileges", "no-new-privileges=true", "seccomp=builtin"]},
    {"SecurityOpt": ["apparmor=docker-default", "label=level:s0:c100,c200"]},
    {"MaskedPaths": [*defaults.MASKED_PATHS, "/proc/cpuinfo"]},
    {"ReadonlyPaths": list(defaults.READONLY_PATHS)},
    {"IpcMode": "private", "PidMode": "", "CgroupnsMode": "private", "NetworkMode": "bridge"},
    {
        "Sysctls": {
            "net.ipv4.ip_forward": "1",
            "net.ipv4.conf.all.rp_filter": "0",
            "net.ipv6.conf.all.disable_ipv6": "1",
            "kernel.shmmax": "1000000",
            "kernel.msgmax": "8192",
            "kernel.sem": "250 32000 32 128",
            "fs.mqueue.msg_max": "100",
        }
    },
    {"Binds": ["{allowed}/data:/data:ro,z", "{allowed}/new/dir:/new", "named:/v"]},
    {"Mounts": [{"Type": "bind", "Source": "{allowed}/file.txt", "Target": "/f.txt"}]},
    {"Mounts": [{"Type": "volume", "Source": "named", "Target": "/v"}]},
    {"Mounts": [{"Type": "volume", "Target": "/anon"}], "Tmpfs": {"/run": "size=1m"}},
    {"OomScoreAdj": 500, "Annotations": {"com.example.team": "blue"}},
]


@pytest.mark.parametrize("host_config", ALLOWED)
def test_the_allowlist_lets_through_what_keeps_the_profile(roots, host_config):
    allowed = str(roots["allowed"])
    host_config = json.loads(json.dumps(host_config).replace("{allowed}", allowed))
    check_allowed(_request(HostConfig=host_config), [allowed])


def test_a_bind_mount_is_refused_when_no_roots_are_configured(roots):
    error = _refusal({"Binds": [f"{roots['allowed']}/data:/data"]}, [])
    assert error.status == 403
    assert "none are configured" in error.message


def test_a_missing_mount_source_inside_the_roots_is_dockers_400(roots):
    source = f"{roots['allowed']}/missing"
    error = _refusal(
        {"Mounts": [{"Type": "bind", "Source": source, "Target": "/m"}]}, [str(roots["allowed"])]
    )
    assert error.status == 400
    assert error.message == (
        f'invalid mount config for type "bind": bind source path does not exist: {source}'
    )


def test_a_missing_mount_source_outside_the_roots_is_refused_not_revealed(roots):
    error = _refusal(
        {"Mounts": [{"Type": "bind", "Source": "/nonexistent", "Target": "/m"}]},
        [str(roots["allowed"])],
    )
    assert error.status == 403


def test_a_volume_of_another_driver_is_not_found_as_in_docker():
    error = _refusal({"Binds": ["data:/data"], "VolumeDriver": "convoy"}, [])
    assert error.status == 404
    assert error.message == 'error looking up volume plugin convoy: plugin "convoy" not found'


@pytest.mark.parametrize(
    ("host_config", "message"),
    [
        ({"Init": True}, "--init is not supported yet"),
        ({"VolumesFrom": ["other"]}, "--volumes-from is not supported yet"),
        (
            {"Mounts": [{"Type": "image", "Source": "busybox", "Target": "/img"}]},
            "image mounts (--mount type=image) are not supported yet",
        ),
    ],
)
def test_what_slipway_cannot_do_yet_is_a_truthful_501(host_config, message):
    with pytest.raises(CreateError) as caught:
        check_allowed(parse_create_body({"Image": "busybox", "HostConfig": host_config}), [])
    assert caught.value.status == 501
    assert message in caught.value.message


# -- Entrypoint and Cmd -----------------------------------------------------------------------

ENTRYPOINT_AND_CMD = [
    # (request fields, image, argv)
    ({}, NGINX, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
    ({"Cmd": ["nginx", "-T"]}, NGINX, ["/docker-entrypoint.sh", "nginx", "-T"]),
    ({"Cmd": "nginx -T"}, NGINX, ["/docker-entrypoint.sh", "nginx -T"]),
    ({"Cmd": []}, NGINX, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
    ({"Entrypoint": ["sh"]}, NGINX, ["sh"]),
    ({"Entrypoint": "sh"}, NGINX, ["sh"]),
    ({"Entrypoint": ["sh", "-c"], "Cmd": ["echo hi"]}, NGINX, ["sh", "-c", "echo hi"]),
    ({"Entrypoint": [""], "Cmd": ["ls", "/"]}, NGINX, ["ls", "/"]),
    ({"Entrypoint": "", "Cmd": ["ls"]}, NGINX, ["ls"]),
    ({"Entrypoint": [], "Cmd": None}, NGINX, ["nginx", "-g", "daemon off;"]),
    (
        {"Entrypoint": None, "Cmd": None},
        NGINX,
        ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"],
    ),
    ({}, BUSYBOX, ["sh"]),
    ({"Cmd": ["echo", "hi"]}, BUSYBOX, ["echo", "hi"]),
    ({"Entrypoint": ["echo"]}, BUSYBOX, ["echo"]),
    ({"Entrypoint": ["echo"], "Cmd": ["hi"]}, BUSYBOX, ["echo", "hi"]),
]


@pytest.mark.parametrize(("fields", "image", "argv"), ENTRYPOINT_AND_CMD)
def test_entrypoint_and_cmd_combine_as_docker_documents(fields, image, argv):
    config = merge_image_config(_request(**fields), image)
    assert process_args(config) == argv


@pytest.mark.parametrize(
    ("fields", "image"),
    [({"Entrypoint": [""]}, NGINX), ({"Entrypoint": ""}, BUSYBOX), ({}, _image())],
)
def test_no_command_at_all_is_dockers_no_command_specified(fields, image):
    with pytest.raises(CreateError) as caught:
        merge_image_config(_request(**fields), image)
    assert (caught.value.status, caught.value.message) == (400, "no command specified")


def test_the_image_fills_in_what_the_request_leaves_out_and_the_request_wins():
    config = merge_image_config(
        _request(Env=["NGINX_VERSION=mine", "EXTRA=1"], Labels={"team": "a"}), NGINX
    )
    assert config["Env"] == ["NGINX_VERSION=mine", "EXTRA=1", DEFAULT_PATH]
    assert config["Labels"] == {"maintainer": "nginx", "team": "a"}
    assert config["StopSignal"] == "SIGQUIT"
    assert config["ExposedPorts"] == {"80/tcp": {}}


# -- Env -------------------------------------------------------------------------------------


def test_env_starts_from_path_and_hostname_and_the_containers_values_replace_them():
    config = merge_image_config(_request(Env=["A=1", "HOSTNAME=mine"]), _image(cmd=["sh"]))
    assert process_env(config, "abc123", "/root") == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=mine",
        "A=1",
        "HOME=/root",
    ]


def test_env_of_the_image_is_merged_and_the_request_wins():
    config = merge_image_config(_request(Env=["PATH=/opt/bin", "NGINX_VERSION=2"]), NGINX)
    env = process_env(config, "h", "/root")
    assert env[0] == "PATH=/opt/bin"
    assert "NGINX_VERSION=2" in env and "NGINX_VERSION=1.22" not in env


def test_a_tty_adds_term_xterm_and_a_name_without_value_unsets_it():
    config = merge_image_config(_request(Tty=True, Env=["PATH", "HOME=/data"]), BUSYBOX)
    assert process_env(config, "h", "/root") == ["HOSTNAME=h", "TERM=xterm", "HOME=/data"]


# -- Users -----------------------------------------------------------------------------------


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "\n"
        "learner:x:1000:1000:A Learner:/home/learner:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\nwheel:x:10:root,learner\nstaff:x:50:learner\nlearner:x:1000:\n"
        "nogroup:x:65534:\n"
    )
    return root


USERS = [
    ("", (0, 0, (0, 10), "/root")),
    ("root", (0, 0, (0, 10), "/root")),
    ("learner", (1000, 1000, (1000, 10, 50), "/home/learner")),
    ("1000", (1000, 1000, (1000, 10, 50), "/home/learner")),
    ("learner:staff", (1000, 50, (50,), "/home/learner")),
    ("learner:65534", (1000, 65534, (65534,), "/home/learner")),
    ("4242", (4242, 0, (0,), "/")),
    ("4242:4343", (4242, 4343, (4343,), "/")),
    ("nobody:nogroup", (65534, 65534, (65534,), "/nonexistent")),
]


@pytest.mark.parametrize(("user", "expected"), USERS)
def test_users_resolve_through_the_images_passwd_and_group(rootfs, user, expected):
    resolved = resolve_user(str(rootfs), user)
    assert (resolved.uid, resolved.gid, resolved.additional_gids, resolved.home) == expected


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("nosuch", "unable to find user nosuch: no matching entries in passwd file"),
        ("learner:nosuch", "unable to find group nosuch: no matching entries in group file"),
        ("-5", "uids and gids must be in range 0-2147483647"),
        ("5:99999999999", "uids and gids must be in range 0-2147483647"),
    ],
)
def test_an_unknown_user_or_group_is_dockers_error(rootfs, user, message):
    with pytest.raises(CreateError) as caught:
        resolve_user(str(rootfs), user)
    assert caught.value.message == message


def test_group_add_takes_names_and_numbers(rootfs):
    resolved = resolve_user(str(rootfs), "learner", ["staff", "777", "wheel"])
    assert resolved.additional_gids == (1000, 10, 50, 777)
    with pytest.raises(CreateError) as caught:
        resolve_user(str(rootfs), "learner", ["ghosts"])
    assert caught.value.message == "Unable to find group ghosts: no matching entries in group file"


def test_passwd_is_read_inside_the_root_even_through_an_absolute_symlink(rootfs, tmp_path):
    (tmp_path / "host-passwd").write_text("intruder:x:0:0::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(str(tmp_path / "host-passwd"))
    with pytest.raises(CreateError) as caught:
        resolve_user(str(rootfs), "intruder")
    assert "unable to find user intruder" in caught.value.message
    (rootfs / "etc" / "real-passwd").write_text("inside:x:7:7::/in:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("/etc/real-passwd")
    assert resolve_user(str(rootfs), "inside").uid == 7


def test_a_passwd_that_is_a_fifo_is_not_read_and_does_not_block(rootfs):
    (rootfs / "etc" / "passwd").unlink()
    os.mkfifo(rootfs / "etc" / "passwd")
    with pytest.raises(CreateError) as caught:
        resolve_user(str(rootfs), "learner")
    assert "unable to find user learner" in caught.value.message
    assert resolve_user(str(rootfs), "").uid == 0


# -- The spec --------------------------------------------------------------------------------


def _spec(rootfs: Path, image: ImageConfig = BUSYBOX, **kwargs: object) -> dict:
    body = kwargs.pop("body", {})
    request = parse_create_body({"Image": "busybox", **body})  # type: ignore[dict-item]
    kwargs.setdefault("allowed_bind_roots", [])
    return build_spec(request, image, str(rootfs), "f" * 64, **kwargs)  # type: ignore[arg-type]


def _mount(spec: dict, destination: str) -> dict:
    return next(m for m in spec["mounts"] if m["destination"] == destination)


def test_the_spec_starts_from_the_default_profile(rootfs):
    spec = _spec(rootfs)
    profile = defaults.container_spec(["sh"])
    assert spec["process"]["capabilities"] == profile["process"]["capabilities"]
    assert spec["process"]["noNewPrivileges"] is True
    assert spec["linux"]["seccomp"] == defaults.seccomp_profile()
    assert spec["linux"]["maskedPaths"] == defaults.MASKED_PATHS
    assert spec["linux"]["readonlyPaths"] == defaults.READONLY_PATHS
    assert spec["linux"]["resources"]["devices"] == defaults.DEVICE_RULES
    assert spec["hostname"] == "ffffffffffff"
    assert spec["process"]["args"] == ["sh"]
    assert spec["process"]["cwd"] == "/"
    assert spec["process"]["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}
    assert "HOSTNAME=ffffffffffff" in spec["process"]["env"]
    assert [ns["type"] for ns in spec["linux"]["namespaces"]][:5] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]


def test_cap_drop_removes_from_the_defaults_and_cap_add_restores_within_them(rootfs):
    spec = _spec(rootfs, body={"HostConfig": {"CapDrop": ["NET_RAW", "mknod"]}})
    caps = spec["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
    assert len(caps) == 12
    spec = _spec(rootfs, body={"HostConfig": {"CapDrop": ["ALL"], "CapAdd": ["CHOWN"]}})
    assert spec["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]


@pytest.mark.parametrize(
    ("host_config", "memory", "cpu", "pids"),
    [
        ({"Memory": 64 << 20}, {"limit": 64 << 20, "swap": 128 << 20}, None, None),
        ({"Memory": 64 << 20, "MemorySwap": -1}, {"limit": 64 << 20}, None, None),
        (
            {"Memory": 64 << 20, "MemorySwap": 100 << 20, "MemoryReservation": 32 << 20},
            {"limit": 64 << 20, "swap": 100 << 20, "reservation": 32 << 20},
            None,
            None,
        ),
        ({"NanoCpus": 1_500_000_000}, None, {"period": 100_000, "quota": 150_000}, None),
        ({"NanoCpus": 10_000_000}, None, {"period": 100_000, "quota": 1000}, None),
        ({"CpuShares": 512, "CpuQuota": 50_000, "CpuPeriod": 200_000}, None,
         {"shares": 512, "quota": 50_000, "period": 200_000}, None),
        ({"PidsLimit": 100}, None, None, {"limit": 100}),
        ({"PidsLimit": 0}, None, None, None),
    ],
)  # fmt: skip
def test_resources_follow_dockers_rules(rootfs, host_config, memory, cpu, pids):
    resources = _spec(rootfs, body={"HostConfig": host_config})["linux"]["resources"]
    assert resources.get("memory") == memory
    assert resources.get("cpu") == cpu
    assert resources.get("pids") == pids


def test_a_tty_and_open_stdin_set_the_terminal_and_the_stdin_annotation(rootfs):
    spec = _spec(
        rootfs,
        body={"Tty": True, "OpenStdin": True, "HostConfig": {"ConsoleSize": [40, 120]}},
        pidns_parent="/proc/1/ns/pid",
        annotations={"org.slipway.log.path": "/var/log/c.log"},
    )
    assert spec["process"]["terminal"] is True
    assert "TERM=xterm" in spec["process"]["env"]
    assert spec["process"]["consoleSize"] == {"height": 40, "width": 120}
    assert spec["annotations"] == {
        "org.slipway.stdin": "open",
        "org.slipway.pidns.parent": "/proc/1/ns/pid",
        "org.slipway.log.path": "/var/log/c.log",
    }


def test_masked_and_read_only_paths_may_be_extended(rootfs):
    spec = _spec(
        rootfs, body={"HostConfig": {"MaskedPaths": [*defaults.MASKED_PATHS, "/proc/cpuinfo"]}}
    )
    assert spec["linux"]["maskedPaths"] == [*defaults.MASKED_PATHS, "/proc/cpuinfo"]
    assert spec["linux"]["readonlyPaths"] == defaults.READONLY_PATHS


def test_no_annotations_without_reason(rootfs):
    assert "annotations" not in _spec(rootfs)


def test_the_working_dir_is_made_inside_the_root_and_a_file_in_the_way_is_an_error(rootfs):
    spec = _spec(rootfs, image=_image(cmd=["sh"], working_dir="/srv/app"))
    assert spec["process"]["cwd"] == "/srv/app"
    assert (rootfs / "srv" / "app").is_dir()
    (rootfs / "lib").symlink_to("/nonexistent-host-dir")
    _spec(rootfs, body={"WorkingDir": "/lib/work"})
    assert not Path("/nonexistent-host-dir").exists()
    assert (rootfs / "nonexistent-host-dir" / "work").is_dir()
    with pytest.raises(CreateError) as caught:
        _spec(rootfs, body={"WorkingDir": "/etc/passwd"})
    assert caught.value.message == "Cannot mkdir: /etc/passwd is not a directory"


def test_mounts_binds_volumes_tmpfs_and_the_network_files(rootfs, roots, tmp_path):
    allowed = roots["allowed"]
    volume_dir = tmp_path / "volumes" / "named" / "_data"
    anonymous_dir = tmp_path / "volumes" / "anon" / "_data"
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.11\n")
    image = _image(cmd=["sh"], volumes=["/var/lib/data"])
    request = parse_create_body(
        {
            "Image": "busybox",
            "HostConfig": {
                "Binds": [
                    f"{allowed}/data:/data:ro,z",
                    "named:/named:nocopy",
                    f"{allowed}/new:/new",
                ],
                "Tmpfs": {"/run": "size=1m,exec", "/dev/shm": "size=2m"},
                "ShmSize": 1 << 20,
            },
        }
    )
    planned = container_mounts(request, image)
    volumes = {m.volume_key: m for m in planned if m.type == "volume"}
    assert set(volumes) == {"named", "/var/lib/data"}
    assert volumes["named"].copy_data is False
    spec = build_spec(
        request,
        image,
        str(rootfs),
        "e" * 64,
        allowed_bind_roots=[str(allowed)],
        volume_mounts={"named": str(volume_dir), "/var/lib/data": str(anonymous_dir)},
        resolv_conf_path=str(resolv),
    )
    assert _mount(spec, "/data") == {
        "destination": "/data",
        "type": "bind",
        "source": str(allowed / "data"),
        "options": ["rbind", "ro", "rprivate"],
    }
    assert _mount(spec, "/named")["source"] == str(volume_dir)
    assert _mount(spec, "/named")["options"] == ["rbind"]
    assert _mount(spec, "/var/lib/data")["source"] == str(anonymous_dir)
    assert (allowed / "new").is_dir()  # -v makes a missing source, as Docker does
    assert _mount(spec, "/run") == {
        "destination": "/run",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "rprivate", "size=1m", "exec"],
    }
    # A tmpfs of the container's own at /dev/shm replaces the default one.
    assert [m for m in spec["mounts"] if m["destination"] == "/dev/shm"] == [
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["noexec", "nosuid", "nodev", "rprivate", "size=2m"],
        }
    ]
    assert _mount(spec, "/etc/resolv.conf") == {
        "destination": "/etc/resolv.conf",
        "type": "bind",
        "source": str(resolv),
        "options": ["rbind", "rprivate"],
    }
    destinations = [m["destination"] for m in spec["mounts"]]
    assert destinations[:6] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
    ]


def test_shm_size_and_a_read_only_root(rootfs, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    spec = _spec(
        rootfs, body={"HostConfig": {"ShmSize": 1 << 20, "ReadonlyRootfs": True}},
        hosts_path=str(hosts),
    )  # fmt: skip
    assert spec["root"]["readonly"] is True
    assert "size=1048576" in _mount(spec, "/dev/shm")["options"]
    assert "ro" not in _mount(spec, "/dev/shm")["options"]
    assert "ro" in _mount(spec, "/sys/fs/cgroup")["options"]
    assert _mount(spec, "/etc/hosts")["options"] == ["rbind", "rprivate", "ro"]
    spec = _spec(rootfs, body={"HostConfig": {"IpcMode": "none"}})
    assert "/dev/shm" not in [m["destination"] for m in spec["mounts"]]


def test_a_volume_the_caller_did_not_resolve_is_an_internal_error(rootfs):
    with pytest.raises(CreateError) as caught:
        _spec(rootfs, body={"HostConfig": {"Binds": ["named:/named"]}})
    assert caught.value.status == 500


def test_a_bind_source_swapped_for_a_symlink_after_create_is_refused_at_start(rootfs, roots):
    allowed = roots["allowed"]
    request = parse_create_body(
        {"Image": "busybox", "HostConfig": {"Binds": [f"{allowed}/data:/data"]}}
    )
    check_allowed(request, [str(allowed)])
    (allowed / "data").rmdir()
    (allowed / "data").symlink_to("/etc")
    with pytest.raises(CreateError) as caught:
        build_spec(request, BUSYBOX, str(rootfs), "d" * 64, allowed_bind_roots=[str(allowed)])
    assert caught.value.status == 403


def test_an_images_volume_over_proc_is_refused_at_start(rootfs):
    with pytest.raises(CreateError) as caught:
        _spec(rootfs, image=_image(cmd=["sh"], volumes=["/proc/sys"]))
    assert caught.value.status == 403


def test_build_spec_refuses_init_rather_than_pretending(rootfs):
    with pytest.raises(CreateError) as caught:
        _spec(rootfs, body={"HostConfig": {"Init": True}})
    assert caught.value.status == 501


def test_namespaces_can_be_joined_and_sysctls_are_applied(rootfs):
    spec = _spec(
        rootfs,
        body={"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}, "CgroupnsMode": "private"}},
        namespace_paths={"network": "/run/netns/c1"},
    )
    namespaces = {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}
    assert namespaces["network"] == "/run/netns/c1"
    assert namespaces["pid"] is None
    assert "cgroup" in namespaces
    assert spec["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
    assert spec["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 2147483647"
    with pytest.raises(CreateError) as caught:
        _spec(rootfs, body={"HostConfig": {"PidMode": "container:db"}})
    assert caught.value.status == 500


@pytest.mark.parametrize("mode", ["host", "container:db"])
def test_a_network_namespace_not_the_containers_own_gets_no_network_sysctls(rootfs, mode):
    spec = _spec(
        rootfs,
        body={"HostConfig": {"NetworkMode": mode}},
        namespace_paths={"network": "/run/netns/node"},
    )
    assert "net.ipv4.ping_group_range" not in spec["linux"]["sysctl"]
    assert "net.ipv4.ip_unprivileged_port_start" not in spec["linux"]["sysctl"]


def test_ulimits_domainname_and_user_reach_the_spec(rootfs):
    spec = _spec(
        rootfs,
        body={
            "User": "learner",
            "Domainname": "example.org",
            "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]},
        },
    )
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1024}]
    assert spec["domainname"] == "example.org"
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 50]}
    assert "HOME=/home/learner" in spec["process"]["env"]


def test_the_spec_passes_the_runtimes_own_checks(rootfs):
    from simulator.runtime.spec import check

    check(_spec(rootfs, body={"Tty": True, "HostConfig": {"Memory": 8 << 20, "PidsLimit": 5}}))


# -- One real run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImageConfig, Path]:
    """The hub's busybox (built if it isn't there), unpacked into a root filesystem."""
    from simulator.archive import apply_layer
    from simulator.hub.storage import DEFAULT_ROOT, HubStorage
    from simulator.images.oci import Index, parse_image_config, parse_manifest

    if not (DEFAULT_ROOT / "repositories" / "library" / "busybox").is_dir():
        subprocess.run(
            [sys.executable, "-m", "simulator.hub", "build", "busybox"],
            cwd=REPO_ROOT,
            check=True,
            timeout=600,
        )
    rootfs = tmp_path_factory.mktemp("busybox") / "rootfs"
    rootfs.mkdir()
    with HubStorage(DEFAULT_ROOT) as hub:
        index = parse_manifest(hub.manifest("library/busybox", "latest").data)
        assert isinstance(index, Index)
        manifest = parse_manifest(hub.manifest("library/busybox", index.manifests[0].digest).data)
        image = parse_image_config(hub.content.read(manifest.config.digest))
        for layer in manifest.layers:  # type: ignore[union-attr]
            with hub.content.open(layer.digest) as blob:
                apply_layer(blob, rootfs, whiteouts="delete")
    with (rootfs / "etc" / "passwd").open("a") as passwd:
        passwd.write("learner:x:1000:1000:A Learner:/home/learner:/bin/sh\n")
    with (rootfs / "etc" / "group").open("a") as group:
        group.write("learner:x:1000:\nstaff:x:50:learner\n")
    return image, rootfs


@pytest.fixture
def test_cgroup() -> Iterator[str]:
    path = f"/slipway-test/spec-{uuid.uuid4().hex[:10]}"
    yield path
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        for directory in (hierarchy / path.lstrip("/"), hierarchy / "slipway-test"):
            try:
                directory.rmdir()
            except OSError:
                pass


@pytest.mark.timeout(120)
def test_a_built_spec_runs_busybox_with_the_expected_env_cwd_user_and_memory_limit(
    busybox_image, test_cgroup, tmp_path
):
    image, rootfs = busybox_image
    script = (
        "id; pwd; echo HOME=$HOME; echo GREETING=$GREETING; echo HOSTNAME=$HOSTNAME; "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null "
        "|| cat /sys/fs/cgroup/memory.max"
    )
    request = parse_create_body(
        {
            "Image": "busybox",
            "User": "learner",
            "WorkingDir": "/work/here",
            "Env": ["GREETING=hello"],
            "Entrypoint": ["sh", "-c"],
            "Cmd": [script],
            "HostConfig": {"Memory": 48 << 20},
        }
    )
    check_allowed(request, [])
    container_id = uuid.uuid4().hex * 2
    spec = build_spec(
        request, image, str(rootfs), container_id,
        allowed_bind_roots=[], cgroups_path=test_cgroup,
    )  # fmt: skip
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps(spec))
    result = subprocess.run(
        [
            sys.executable, "-m", "simulator.runtime", "--root", str(tmp_path / "state"),
            "run", f"slipway-test-{container_id[:12]}", "--bundle", str(bundle),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "uid=1000(learner) gid=1000(learner) groups=50(staff),1000(learner)"
    assert lines[1] == "/work/here"
    assert lines[2:5] == ["HOME=/home/learner", "GREETING=hello", f"HOSTNAME={container_id[:12]}"]
    assert int(lines[5]) == 48 << 20
