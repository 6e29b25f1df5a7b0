"""Every field of Docker's create body by what Berth does with it: mapped, accepted only empty
(501 otherwise), or only the client's business. Not listed: 400 (fail closed)."""

# Config fields Berth cannot honour: allowed only empty.
CONFIG_EMPTY_ONLY = {
    "Domainname": "Domainname (--domainname)",
    "OnBuild": "OnBuild",
    "Shell": "Shell",
    "ArgsEscaped": "ArgsEscaped",
}
# Config fields that only tell the client what to attach to; they change nothing on the server.
CONFIG_CLIENT_SIDE = {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"}
CONFIG_MAPPED = {
    "Hostname",
    "User",
    "Tty",
    "OpenStdin",
    "Env",
    "Cmd",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "ExposedPorts",
    "Healthcheck",
}
TOP_LEVEL = (
    CONFIG_MAPPED
    | set(CONFIG_EMPTY_ONLY)
    | CONFIG_CLIENT_SIDE
    | {"HostConfig", "NetworkingConfig", "Platform"}
)

HOST_EMPTY_ONLY = {
    "CgroupParent": "CgroupParent (--cgroup-parent)",
    "BlkioWeightDevice": "BlkioWeightDevice (--blkio-weight-device)",
    "CpuRealtimePeriod": "CpuRealtimePeriod",
    "CpuRealtimeRuntime": "CpuRealtimeRuntime",
    "CpusetMems": "CpusetMems (--cpuset-mems)",
    "DeviceCgroupRules": "DeviceCgroupRules (--device-cgroup-rule)",
    "DeviceRequests": "DeviceRequests (--gpus)",
    "MemoryReservation": "MemoryReservation (--memory-reservation)",
    "OomKillDisable": "OomKillDisable (--oom-kill-disable)",
    "Ulimits": "Ulimits (--ulimit)",
    "CpuCount": "CpuCount",
    "CpuPercent": "CpuPercent",
    "IOMaximumIOps": "IOMaximumIOps",
    "IOMaximumBandwidth": "IOMaximumBandwidth",
    "KernelMemory": "KernelMemory",
    "KernelMemoryTCP": "KernelMemoryTCP",
    "VolumesFrom": "VolumesFrom (--volumes-from)",
    "DnsOptions": "DnsOptions (--dns-option)",
    "GroupAdd": "GroupAdd (--group-add)",
    "Cgroup": "Cgroup",
    "OomScoreAdj": "OomScoreAdj (--oom-score-adj)",
    "StorageOpt": "StorageOpt (--storage-opt)",
    "Tmpfs": "Tmpfs (--tmpfs; use Mounts of type tmpfs)",
    "ShmSize": "ShmSize (--shm-size)",
    "Sysctls": "Sysctls (--sysctl)",
    "Annotations": "Annotations",
    "Capabilities": "Capabilities",
}
# Client-side or cosmetic: the container ID file is written by the CLI, the console size is the
# first TTY size.
HOST_CLIENT_SIDE = {"ContainerIDFile", "ConsoleSize"}
HOST_MAPPED = {
    "CpuShares",
    "Memory",
    "MemorySwap",
    "MemorySwappiness",
    "NanoCpus",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "PidsLimit",
    "BlkioWeight",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "Devices",
    "Init",
    "Binds",
    "Mounts",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "PublishAllPorts",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "UsernsMode",
    "Dns",
    "DnsSearch",
    "ExtraHosts",
    "IpcMode",
    "PidMode",
    "UTSMode",
    "Links",
    "Privileged",
    "ReadonlyRootfs",
    "SecurityOpt",
    "Runtime",
    "Isolation",
    "MaskedPaths",
    "ReadonlyPaths",
}
ENDPOINT_FIELDS = {
    "IPAMConfig",
    "Links",
    "MacAddress",
    "Aliases",
    "DriverOpts",
    "GwPriority",
    "NetworkID",
    "EndpointID",
    "Gateway",
    "IPAddress",
    "IPPrefixLen",
    "IPv6Gateway",
    "GlobalIPv6Address",
    "GlobalIPv6PrefixLen",
    "DNSNames",
}
