"""Real Debian daemons, each on its own loopback address inside a network namespace.

Shared by the integration tests (tests/test_squatters.py, tests/test_legacy_stability.py) and
the squatter benchmark (bench/squatters.py). Nothing here needs pytest: a caller gives the
name of a namespace it created, a temporary working directory, and the daemons; `start`
writes their configuration there and starts them inside the namespace; `wait_bound` waits
until each listens; `stop` ends them by PID, and after them whatever they forked inside the
namespace (socat's per-connection shells, vsftpd's sessions, inetd's servers), all of which
descend from the caller.

What each daemon needs was learnt in tests/samples/record_protocols.py, which records their
answers on the default ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Endpoint = tuple[int, str]
"""(port, "tcp" or "udp")"""


@dataclass(frozen=True)
class Daemon:
    """One daemon: its address, what it listens on and speaks there, and how to run it.

    `command` takes the working directory (configuration files go there) and returns the
    argv; `speaks` maps each endpoint to the protocol ghostport should name there (the
    IANA-style names of profiles/common-protocols.yaml: `domain`, `memcache`, `ircd`...).
    """

    name: str
    package: str
    address: str
    speaks: dict[Endpoint, str]
    command: Callable[[Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def executable(self) -> str:
        """The program the daemon runs (looked up to skip a daemon that is not installed)."""
        return self.command(Path("/nonexistent"))[0]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def installed(daemon: Daemon) -> bool:
    """Whether the daemon's program is on this machine."""
    program = daemon.executable
    return shutil.which(program) is not None or Path(program).is_file()


# ---------------------------------------------------------------- the squatters


def _redis(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            address,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ]

    return command


def _mosquitto(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"mosquitto-{address}.conf"
        if work.is_dir():
            _write(
                conf,
                f"listener {port} {address}\nallow_anonymous true\npersistence false\n"
                "user root\n",  # mosquitto drops root before it binds a port < 1024
            )
        return ["mosquitto", "-c", str(conf)]

    return command


def _nginx(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"nginx-{address}.conf"
        if work.is_dir():
            _write(
                conf,
                f"""
                daemon off;
                pid {work}/nginx-{address}.pid;
                error_log stderr;
                events {{}}
                http {{
                    access_log off;
                    client_body_temp_path {work}/nginx-body;
                    proxy_temp_path {work}/nginx-proxy;
                    fastcgi_temp_path {work}/nginx-fastcgi;
                    uwsgi_temp_path {work}/nginx-uwsgi;
                    scgi_temp_path {work}/nginx-scgi;
                    server {{
                        listen {address}:{port};
                        location / {{ return 200 "ok"; }}
                    }}
                }}
                """,
            )
        return ["nginx", "-c", str(conf)]

    return command


def _dropbear(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        key = work / "dropbear_ed25519_key"
        if work.is_dir() and not key.exists():
            subprocess.run(
                ["dropbearkey", "-t", "ed25519", "-f", str(key)], capture_output=True, check=True
            )
        return ["dropbear", "-F", "-E", "-s", "-p", f"{address}:{port}", "-r", str(key)]

    return command


def _vsftpd(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"vsftpd-{address}.conf"
        if work.is_dir():
            empty = work / "vsftpd-empty"
            empty.mkdir(exist_ok=True)
            _write(
                conf,
                f"""
                listen=YES
                listen_address={address}
                listen_port={port}
                background=NO
                anonymous_enable=NO
                local_enable=YES
                secure_chroot_dir={empty}
                """,
            )
        return ["vsftpd", str(conf)]

    return command


def _bind_shell(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(_work: Path) -> list[str]:
        return ["socat", f"TCP-LISTEN:{port},bind={address},reuseaddr,fork", "EXEC:/bin/sh"]

    return command


def _tinyproxy(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"tinyproxy-{address}.conf"
        if work.is_dir():
            _write(
                conf,
                f"""
                Port {port}
                Listen {address}
                Allow 127.0.0.0/8
                ConnectPort 443
                MaxClients 10
                """,
            )
        return ["tinyproxy", "-d", "-c", str(conf)]

    return command


def _memcached(address: str, tcp: int, udp: int) -> Callable[[Path], list[str]]:
    def command(_work: Path) -> list[str]:
        return ["memcached", "-u", "root", "-l", address, "-p", str(tcp), "-U", str(udp)]

    return command


def _beanstalkd(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(_work: Path) -> list[str]:
        return ["beanstalkd", "-l", address, "-p", str(port)]

    return command


def _nats(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(_work: Path) -> list[str]:
        return ["nats-server", "-a", address, "-p", str(port)]

    return command


def _ngircd(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"ngircd-{address}.conf"
        if work.is_dir():
            _write(
                conf,
                f"""
                [Global]
                Name = irc.ghostport.test
                Info = ghostport test server
                Listen = {address}
                Ports = {port}
                PidFile = {work}/ngircd-{address}.pid
                [Options]
                Ident = no
                DNS = no
                PAM = no
                """,
            )
        return ["ngircd", "-n", "-f", str(conf)]

    return command


def _dnsmasq(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        return [
            "dnsmasq",
            "-k",
            "-C",
            "/dev/null",
            f"--listen-address={address}",
            "--bind-interfaces",
            f"--port={port}",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            f"--pid-file={work}/dnsmasq-{address}.pid",
        ]

    return command


def _chronyd(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / f"chrony-{address}.conf"
        if work.is_dir():
            _write(
                conf,
                f"""
                port {port}
                bindaddress {address}
                allow 127.0.0.0/8
                pidfile {work}/chronyd-{address}.pid
                driftfile {work}/chrony-{address}.drift
                cmdport 0
                """,
            )
        return ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)]

    return command


def _tftpd(address: str, port: int) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        root = work / "tftp"
        if work.is_dir():
            root.mkdir(exist_ok=True)
        return ["in.tftpd", "-L", "-u", "root", "-a", f"{address}:{port}", "-s", str(root)]

    return command


def squatters(base: str = "127.0.20.") -> list[Daemon]:
    """Real daemons of different protocols, each on its own address `base` + N, on ports
    registered to obsolete services (registry-orphans, legacy-mgmt)."""

    def at(n: int) -> str:
        return f"{base}{n}"

    return [
        Daemon("redis", "redis-server", at(1), {(391, "tcp"): "redis"}, _redis(at(1), 391)),
        Daemon("mosquitto", "mosquitto", at(2), {(392, "tcp"): "mqtt"}, _mosquitto(at(2), 392)),
        Daemon("nginx", "nginx", at(3), {(412, "tcp"): "http"}, _nginx(at(3), 412)),
        Daemon("dropbear", "dropbear-bin", at(4), {(3416, "tcp"): "ssh"}, _dropbear(at(4), 3416)),
        Daemon("vsftpd", "vsftpd", at(5), {(348, "tcp"): "ftp"}, _vsftpd(at(5), 348)),
        Daemon(
            "socat bind shell", "socat", at(6), {(3333, "tcp"): "shell"}, _bind_shell(at(6), 3333)
        ),
        Daemon(
            "tinyproxy", "tinyproxy", at(7), {(106, "tcp"): "http-proxy"}, _tinyproxy(at(7), 106)
        ),
        Daemon(
            "memcached",
            "memcached",
            at(8),
            {(396, "tcp"): "memcache", (412, "udp"): "memcache"},
            _memcached(at(8), 396, 412),
        ),
        Daemon(
            "beanstalkd",
            "beanstalkd",
            at(9),
            {(4786, "tcp"): "beanstalkd"},
            _beanstalkd(at(9), 4786),
        ),
        Daemon("nats-server", "nats-server", at(10), {(6000, "tcp"): "nats"}, _nats(at(10), 6000)),
        Daemon("ngircd", "ngircd", at(11), {(1993, "tcp"): "ircd"}, _ngircd(at(11), 1993)),
        Daemon(
            "dnsmasq",
            "dnsmasq-base",
            at(12),
            {(391, "udp"): "domain", (391, "tcp"): "domain"},
            _dnsmasq(at(12), 391),
        ),
        Daemon("chronyd", "chrony", at(13), {(392, "udp"): "ntp"}, _chronyd(at(13), 392)),
        Daemon("tftpd-hpa", "tftpd-hpa", at(14), {(3416, "udp"): "tftp"}, _tftpd(at(14), 3416)),
    ]


# ---------------------------------------------------------------- the legacy host

SMALL_SERVICES = ("echo", "discard", "daytime", "chargen", "time")


def _snmpd(address: str) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / "snmpd.conf"
        if work.is_dir():
            _write(
                conf,
                f"""
                agentaddress udp:{address}:161,udp:{address}:391,tcp:{address}:1993
                master agentx
                agentXSocket tcp:{address}:705
                smuxsocket {address}
                rocommunity public 127.0.0.0/8
                sysdescr SynOptics Model 2813 Hub, agent rev 5.20 (ghostport stability)
                sysname synoptics-lab
                """,
            )
        return ["snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(work / "snmpd.pid")]

    return command


def _inetd(address: str) -> Callable[[Path], list[str]]:
    """inetutils-inetd: the small services on TCP and UDP, rlogind on 513 and rshd on 514."""

    def command(work: Path) -> list[str]:
        conf = work / "inetd.conf"
        if work.is_dir():
            lines = [
                f"{address}:{name} {kind} {proto} {wait} root internal"
                for name in SMALL_SERVICES
                for kind, proto, wait in (("stream", "tcp", "nowait"), ("dgram", "udp", "wait"))
            ]
            lines += [
                f"{address}:login stream tcp nowait root /usr/sbin/in.rlogind in.rlogind",
                f"{address}:shell stream tcp nowait root /usr/sbin/in.rshd in.rshd",
            ]
            _write(conf, "\n".join(lines) + "\n")
        return ["inetutils-inetd", "-d", f"--pidfile={work}/inetd.pid", str(conf)]

    return command


def _snmptrapd(address: str) -> Callable[[Path], list[str]]:
    def command(work: Path) -> list[str]:
        conf = work / "snmptrapd.conf"
        if work.is_dir():
            _write(conf, "authCommunity log,execute,net public\ndisableAuthorization yes\n")
        return [
            "snmptrapd",
            "-f",
            "-Lo",
            "-C",
            "-c",
            str(conf),
            "-p",
            str(work / "snmptrapd.pid"),
            f"udp:{address}:162",
        ]

    return command


def legacy(base: str = "127.0.30.") -> list[Daemon]:
    """One legacy host's worth of daemons, each on its own address `base` + N: net-snmp with
    SNMP on 161 and the SynOptics relay port, SMUX, AgentX and SNMP over TCP; inetd's small
    services and the r-services; tftpd-hpa on 69 and on the AirMobile port; snmptrapd."""
    small = {
        (port, proto): name
        for name, port in zip(SMALL_SERVICES, (7, 9, 13, 19, 37), strict=True)
        for proto in ("tcp", "udp")
    }
    snmp_env = {"SNMP_PERSISTENT_DIR": "{work}/snmp", "MIBS": ""}
    return [
        Daemon(
            "snmpd",
            "snmpd",
            f"{base}1",
            {
                (161, "udp"): "snmp",
                (391, "udp"): "synoptics-relay",
                (199, "tcp"): "smux",
                (705, "tcp"): "agentx",
                (1993, "tcp"): "snmp-tcp",
            },
            _snmpd(f"{base}1"),
            snmp_env,
        ),
        Daemon(
            "inetd",
            "inetutils-inetd",
            f"{base}2",
            {**small, (513, "tcp"): "rlogin", (514, "tcp"): "rsh"},
            _inetd(f"{base}2"),
        ),
        Daemon("tftpd", "tftpd-hpa", f"{base}3", {(69, "udp"): "tftp"}, _tftpd(f"{base}3", 69)),
        Daemon(
            "tftpd on 3416",
            "tftpd-hpa",
            f"{base}4",
            {(3416, "udp"): "tftp"},
            _tftpd(f"{base}4", 3416),
        ),
        Daemon(
            "snmptrapd",
            "snmptrapd",
            f"{base}5",
            {(162, "udp"): "snmptrap"},
            _snmptrapd(f"{base}5"),
            snmp_env,
        ),
    ]


def ports_of(daemons: Iterable[Daemon]) -> str:
    """The daemons' ports as a ghostport/nmap `-p` spec: `T:...,U:...`."""
    tcp = sorted({p for d in daemons for p, t in d.speaks if t == "tcp"})
    udp = sorted({p for d in daemons for p, t in d.speaks if t == "udp"})
    parts = []
    if tcp:
        parts.append("T:" + ",".join(map(str, tcp)))
    if udp:
        parts.append("U:" + ",".join(map(str, udp)))
    return ",".join(parts)


# ---------------------------------------------------------------- running them


def netns_exec(namespace: str, *command: str) -> list[str]:
    """argv running `command` inside the namespace."""
    return ["ip", "netns", "exec", namespace, *command]


def add_addresses(namespace: str, daemons: Iterable[Daemon]) -> None:
    """Give the namespace's loopback each daemon's address of its own (a /32 beside
    127.0.0.1/8): tftpd-hpa resolves its bind address only when the host has an address
    other than 127.0.0.1, and answers from the address a request came to only then."""
    for address in dict.fromkeys(d.address for d in daemons):
        subprocess.run(
            netns_exec(namespace, "ip", "addr", "add", f"{address}/32", "dev", "lo"),
            capture_output=True,
            check=True,
        )


def hosts_file(daemons: Iterable[Daemon], name: str = "legacy-host") -> str:
    """/etc/hosts for the namespace (`ip netns exec` mounts /etc/netns/NS/hosts over it):
    rshd and rlogind hang up on a client whose address has no name."""
    lines = ["127.0.0.1 localhost"]
    lines += [
        f"{a} {name}-{a.rsplit('.', 1)[1]}" for a in dict.fromkeys(d.address for d in daemons)
    ]
    return "\n".join(lines) + "\n"


def start(namespace: str, work: Path, daemons: Sequence[Daemon]) -> list[subprocess.Popen[bytes]]:
    """Write each daemon's configuration under `work` and start it inside the namespace; its
    output goes to work/<name>.log. Returns the processes (the caller stops them)."""
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # daemons that drop privileges still read their configuration
    started: list[subprocess.Popen[bytes]] = []
    for daemon in daemons:
        log = (work / f"{daemon.name.replace(' ', '-')}-{daemon.address}.log").open("wb")
        try:
            started.append(
                subprocess.Popen(
                    netns_exec(namespace, *daemon.command(work)),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **{k: v.format(work=work) for k, v in daemon.env.items()}},
                    cwd=work,
                )
            )
        finally:
            log.close()
    return started


def listening(namespace: str) -> set[tuple[str, int, str]]:
    """(address, port, transport) of every listening TCP and bound UDP socket in the
    namespace."""
    done = subprocess.run(
        netns_exec(namespace, "ss", "-Htuln"), capture_output=True, text=True, check=True
    )
    found = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        address, _, port = fields[4].rpartition(":")
        found.add((address.strip("[]"), int(port), fields[0]))
    return found


def wait_bound(
    namespace: str,
    daemons: Sequence[Daemon],
    processes: Sequence[subprocess.Popen[bytes]],
    work: Path,
    timeout: float = 20.0,
) -> None:
    """Wait until every daemon listens on all of its endpoints. Raises RuntimeError naming
    the daemons that did not, with the end of their logs."""
    wanted = {(d.address, p, t): d for d in daemons for (p, t) in d.speaks}
    deadline = time.monotonic() + timeout
    missing = set(wanted)
    while time.monotonic() < deadline:
        missing = set(wanted) - listening(namespace)
        if not missing:
            return
        time.sleep(0.1)
    lines = []
    for key in sorted(missing):
        daemon = wanted[key]
        index = list(daemons).index(daemon)
        code = processes[index].poll()
        log = work / f"{daemon.name.replace(' ', '-')}-{daemon.address}.log"
        tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
        lines.append(f"{daemon.name} not bound on {key} (exit {code}): {tail!r}")
    raise RuntimeError("; ".join(lines))


def stop(namespace: str, processes: Iterable[subprocess.Popen[bytes]]) -> None:
    """Stop the daemons by PID, then whatever they left in the namespace (the caller made the
    namespace, so everything in it descends from the caller)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 5
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    left = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    for pid in left.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
