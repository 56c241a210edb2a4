"""Record what real Debian daemons answer to common-protocols.yaml's probes.

Called by record.py (`sudo python tests/samples/record.py --protocols-only`). Every daemon runs
inside a network namespace this creates and deletes, bound to the namespace's loopback, from
a temporary directory of configuration; each is stopped by its PID. A daemon that is not
installed or does not come up is reported and skipped: its sample stays constructed (see
tests/samples/__init__.py). Packages: redis-server memcached mosquitto postgresql
mariadb-server dnsmasq chrony nginx openssh-server dropbear-bin vsftpd exim4-daemon-light
dovecot-imapd dovecot-pop3d slapd samba tinyproxy socat inetutils-inetd git rsync xvfb x11vnc
beanstalkd nats-server ngircd coturn rpcbind libcoap3-bin dante-server microsocks
strongswan-charon openvpn xrdp kamailio prosody.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from scanner.probeset import payload_of  # noqa: E402
from scanner.profiles import load_profiles, merged  # noqa: E402

NS = f"gp-proto-{os.getpid()}"


@dataclass
class Daemon:
    """One daemon: its package (for the version), how to prepare and start it."""

    package: str
    command: list[str]
    prepare: Callable[[Path], None] = lambda _work: None
    settle: float = 0.0
    env: dict[str, str] = field(default_factory=dict)


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload,no-any-return]


def inside(code: str) -> bytes | None:
    done = run(["ip", "netns", "exec", NS, sys.executable, "-c", textwrap.dedent(code)], timeout=30)
    text = done.stdout.strip()
    return bytes.fromhex(text) if done.returncode == 0 and text else None


def tcp_reply(port: int, payload: bytes, limit: int = 4096, wait: float = 2.0) -> bytes | None:
    return inside(f"""
        import socket, time
        s = socket.create_connection(("127.0.0.1", {port}), timeout=3)
        if {payload!r}:
            s.sendall({payload!r})
        data = b""
        end = time.monotonic() + {wait}
        s.settimeout(0.3)
        while len(data) < {limit} and time.monotonic() < end:
            try:
                chunk = s.recv({limit} - len(data))
            except socket.timeout:
                if data:
                    break
                continue
            if not chunk:
                break
            data += chunk
        print(data.hex())
    """)


def udp_reply(port: int, payload: bytes) -> bytes | None:
    return inside(f"""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto({payload!r}, ("127.0.0.1", {port}))
        print(s.recvfrom(65535)[0].hex())
    """)


def package_version(package: str) -> str:
    done = run(["dpkg-query", "-W", "-f", "${Version}", package])
    return f"{package} {done.stdout.strip()} (Debian)" if done.returncode == 0 else package


# ---------------------------------------------------------------- configuration


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


def _postgres(work: Path) -> None:
    data = work / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    initdb = next(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    (work / "pgpass").write_text("unused-password\n")
    shutil.chown(work / "pgpass", "postgres", "postgres")
    run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(initdb),
            "-D",
            str(data),
            "-A",
            "md5",
            f"--pwfile={work / 'pgpass'}",
        ]
    )


def _mariadb(work: Path) -> None:
    run(
        [
            "mariadb-install-db",
            "--user=root",
            f"--datadir={work / 'mysql'}",
            "--skip-test-db",
            "--auth-root-authentication-method=normal",
        ],
        timeout=120,
    )


def _tls(work: Path) -> None:
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ghostport.test",
            "-keyout",
            str(work / "key.pem"),
            "-out",
            str(work / "cert.pem"),
        ]
    )
    _write(
        work / "nginx.conf",
        f"""
        daemon off;
        pid {work}/nginx.pid;
        error_log stderr;
        events {{}}
        http {{
            access_log off;
            server {{ listen 127.0.0.1:80; location / {{ return 200 "ok"; }} }}
            server {{
                listen 127.0.0.1:443 ssl;
                ssl_certificate {work}/cert.pem;
                ssl_certificate_key {work}/key.pem;
                location / {{ return 200 "ok"; }}
            }}
        }}
    """,
    )


def _ssh(work: Path) -> None:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "ssh_host_key")])
    run(["dropbearkey", "-t", "ed25519", "-f", str(work / "dropbear_key")])
    Path("/run/sshd").mkdir(exist_ok=True)


def _misc(work: Path) -> None:
    _write(work / "mosquitto.conf", "listener 1883 127.0.0.1\nallow_anonymous true\n")
    _write(
        work / "vsftpd.conf",
        f"""
        listen=YES
        listen_address=127.0.0.1
        background=NO
        anonymous_enable=NO
        local_enable=YES
        secure_chroot_dir={work}
    """,
    )
    _write(
        work / "chrony.conf",
        f"""
        port 123
        bindaddress 127.0.0.1
        allow 127.0.0.1
        pidfile {work}/chronyd.pid
        driftfile {work}/chrony.drift
        cmdport 0
    """,
    )
    _write(
        work / "tinyproxy.conf",
        """
        Port 8888
        Listen 127.0.0.1
        Allow 127.0.0.1
        ConnectPort 443
        MaxClients 10
    """,
    )
    _write(work / "rsyncd.conf", f"pid file = {work}/rsyncd.pid\n[pub]\npath = {work}\n")
    _write(
        work / "ngircd.conf",
        """
        [Global]
        Name = irc.ghostport.test
        Info = ghostport test server
        Listen = 127.0.0.1
        Ports = 6667
        [Options]
        Ident = no
        DNS = no
        PAM = no
    """,
    )
    _write(
        work / "danted.conf",
        """
        logoutput: stderr
        internal: 127.0.0.1 port = 1081
        external: 127.0.0.1
        socksmethod: none
        clientmethod: none
        user.privileged: root
        user.unprivileged: nobody
        client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
        socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
    """,
    )
    _write(
        work / "smb.conf",
        f"""
        [global]
        interfaces = lo
        bind interfaces only = yes
        smb ports = 445
        pid directory = {work}/samba
        lock directory = {work}/samba
        state directory = {work}/samba
        cache directory = {work}/samba
        private dir = {work}/samba
        log file = {work}/samba/log
        disable netbios = no
    """,
    )
    (work / "samba").mkdir()
    (work / "git").mkdir()
    _write(work / "inetd.conf", "echo stream tcp nowait root internal\n")
    _write(
        work / "dovecot.conf",
        f"""
        protocols = imap pop3
        listen = 127.0.0.1
        ssl = no
        base_dir = {work}/dovecot-run
        state_dir = {work}/dovecot-state
        log_path = {work}/dovecot.log
        passdb {{
          driver = static
          args = password=unused
        }}
        userdb {{
          driver = static
          args = uid=65534 gid=65534 home=/nonexistent
        }}
    """,
    )
    _write(work / "strongswan.conf", "charon {\n  port = 500\n  port_nat_t = 4500\n}\n")


def _openvpn(work: Path) -> None:
    run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ghostport-vpn",
            "-keyout",
            str(work / "vpn.key"),
            "-out",
            str(work / "vpn.crt"),
        ]
    )


def daemons(work: Path) -> list[Daemon]:
    """Every daemon, configured to listen on the namespace's loopback."""
    pg_bin = next(Path("/usr/lib/postgresql").glob("*/bin"), Path("/nonexistent"))
    return [
        Daemon(
            "redis-server",
            [
                "redis-server",
                "--port",
                "6379",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        ),
        Daemon(
            "memcached",
            ["memcached", "-u", "root", "-l", "127.0.0.1", "-p", "11211", "-U", "11211"],
        ),
        Daemon("mosquitto", ["mosquitto", "-c", str(work / "mosquitto.conf")], _misc),
        Daemon(
            "postgresql",
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(pg_bin / "postgres"),
                "-D",
                str(work / "pg"),
                "-k",
                str(work / "pg"),
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                "5432",
            ],
            _postgres,
        ),
        Daemon(
            "mariadb-server",
            [
                "mariadbd",
                "--user=root",
                f"--datadir={work / 'mysql'}",
                f"--socket={work / 'mysql.sock'}",
                "--port=3306",
                "--bind-address=127.0.0.1",
                f"--pid-file={work}/my.pid",
            ],
            _mariadb,
            settle=4,
        ),
        Daemon(
            "dnsmasq",
            [
                "dnsmasq",
                "-k",
                "-C",
                "/dev/null",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                f"--pid-file={work}/dnsmasq.pid",
            ],
        ),
        Daemon("chrony", ["chronyd", "-d", "-x", "-u", "root", "-f", str(work / "chrony.conf")]),
        Daemon("nginx", ["nginx", "-c", str(work / "nginx.conf")], _tls),
        Daemon(
            "openssh-server",
            [
                "/usr/sbin/sshd",
                "-D",
                "-e",
                "-p",
                "22",
                "-o",
                "ListenAddress=127.0.0.1",
                "-h",
                str(work / "ssh_host_key"),
            ],
            _ssh,
        ),
        Daemon(
            "dropbear-bin",
            ["dropbear", "-F", "-E", "-p", "127.0.0.1:2222", "-r", str(work / "dropbear_key")],
        ),
        Daemon("vsftpd", ["vsftpd", str(work / "vsftpd.conf")]),
        Daemon(
            "exim4-daemon-light",
            ["socat", "TCP-LISTEN:25,bind=127.0.0.1,reuseaddr,fork", "EXEC:exim -bs"],
        ),
        Daemon("dovecot-core", ["dovecot", "-F", "-c", str(work / "dovecot.conf")]),
        Daemon("slapd", ["slapd", "-d", "0", "-h", "ldap://127.0.0.1:389/"]),
        Daemon(
            "samba", ["smbd", "--foreground", "--no-process-group", "-s", str(work / "smb.conf")]
        ),
        Daemon(
            "samba", ["nmbd", "--foreground", "--no-process-group", "-s", str(work / "smb.conf")]
        ),
        Daemon("tinyproxy", ["tinyproxy", "-d", "-c", str(work / "tinyproxy.conf")]),
        Daemon("socat", ["socat", "TCP-LISTEN:4444,bind=127.0.0.1,reuseaddr,fork", "EXEC:/bin/sh"]),
        Daemon(
            "socat",
            [
                "socat",
                "TCP-LISTEN:4445,bind=127.0.0.1,reuseaddr,fork",
                "EXEC:bash -i,pty,stderr,setsid,sane",
            ],
            env={"PS1": "root@backdoor:~# ", "HOME": str(work)},
        ),
        Daemon("inetutils-inetd", ["inetutils-inetd", "-d", str(work / "inetd.conf")]),
        Daemon(
            "git",
            [
                "git",
                "daemon",
                "--listen=127.0.0.1",
                "--port=9418",
                f"--base-path={work / 'git'}",
                str(work / "git"),
            ],
        ),
        Daemon(
            "rsync",
            [
                "rsync",
                "--daemon",
                "--no-detach",
                "--address=127.0.0.1",
                "--port=873",
                f"--config={work / 'rsyncd.conf'}",
            ],
        ),
        Daemon("xvfb", ["Xvfb", ":1", "-ac", "-listen", "tcp"], settle=1),
        Daemon(
            "x11vnc",
            [
                "x11vnc",
                "-display",
                "127.0.0.1:1",
                "-rfbport",
                "5900",
                "-listen",
                "127.0.0.1",
                "-forever",
                "-nopw",
                "-quiet",
                "-noshm",
            ],
            settle=2,
        ),
        Daemon("nats-server", ["nats-server", "-a", "127.0.0.1", "-p", "4222"]),
        Daemon("beanstalkd", ["beanstalkd", "-l", "127.0.0.1", "-p", "11300"]),
        Daemon("ngircd", ["ngircd", "-n", "-f", str(work / "ngircd.conf")]),
        Daemon(
            "coturn",
            [
                "turnserver",
                "-n",
                "--listening-ip=127.0.0.1",
                "--listening-port=3478",
                "--no-cli",
                "--log-file=stdout",
            ],
        ),
        Daemon("rpcbind", ["rpcbind", "-f", "-w", "-h", "127.0.0.1"]),
        Daemon("libcoap3-bin", ["coap-server-notls", "-A", "127.0.0.1", "-p", "5683"]),
        Daemon("dante-server", ["danted", "-f", str(work / "danted.conf")]),
        Daemon("microsocks", ["microsocks", "-i", "127.0.0.1", "-p", "1080"]),
        Daemon(
            "strongswan-charon",
            ["/usr/lib/ipsec/charon"],
            env={"STRONGSWAN_CONF": str(work / "strongswan.conf")},
            settle=1,
        ),
        Daemon(
            "openvpn",
            [
                "openvpn",
                "--dev",
                "null",
                "--proto",
                "udp",
                "--local",
                "127.0.0.1",
                "--lport",
                "1194",
                "--tls-server",
                "--dh",
                "none",
                "--ca",
                str(work / "vpn.crt"),
                "--cert",
                str(work / "vpn.crt"),
                "--key",
                str(work / "vpn.key"),
                "--verb",
                "1",
            ],
            _openvpn,
        ),
        Daemon(
            "kamailio",
            [
                "kamailio",
                "-DD",
                "-E",
                "-l",
                "udp:127.0.0.1:5060",
                "-l",
                "tcp:127.0.0.1:5060",
                "-P",
                str(work / "kamailio.pid"),
            ],
            settle=1,
        ),
    ]


# key: (package, transport, port, probe id); a probe id of "" sends nothing (server first)
EXCHANGES: dict[str, tuple[str, str, int, str]] = {
    "proto-http": ("nginx", "tcp", 80, "http-get"),
    "proto-http-proxy-negative": ("nginx", "tcp", 80, "http-proxy-connect"),
    "proto-tls-alert": ("nginx", "tcp", 443, "http-get"),
    "proto-tls-server-hello": ("nginx", "tcp", 443, "tls-client-hello"),
    "proto-ssh-openssh": ("openssh-server", "tcp", 22, ""),
    "proto-ssh-dropbear": ("dropbear-bin", "tcp", 2222, ""),
    "proto-ftp": ("vsftpd", "tcp", 21, ""),
    "proto-smtp": ("exim4-daemon-light", "tcp", 25, ""),
    "proto-pop3": ("dovecot-core", "tcp", 110, ""),
    "proto-imap": ("dovecot-core", "tcp", 143, ""),
    "proto-mysql": ("mariadb-server", "tcp", 3306, ""),
    "proto-vnc": ("x11vnc", "tcp", 5900, ""),
    "proto-x11": ("xvfb", "tcp", 6001, "x11-setup"),
    "proto-nats": ("nats-server", "tcp", 4222, ""),
    "proto-rsync": ("rsync", "tcp", 873, ""),
    "proto-shell-sh": ("socat", "tcp", 4444, "shell-echo"),
    "proto-shell-bash-pty": ("socat", "tcp", 4445, "shell-echo"),
    "proto-shell-echo-negative": ("inetutils-inetd", "tcp", 7, "shell-echo"),
    "proto-redis": ("redis-server", "tcp", 6379, "redis-ping"),
    "proto-memcached": ("memcached", "tcp", 11211, "memcached-version"),
    "proto-memcached-udp": ("memcached", "udp", 11211, "memcached-version-udp"),
    "proto-mqtt": ("mosquitto", "tcp", 1883, "mqtt-connect"),
    "proto-postgresql": ("postgresql", "tcp", 5432, "postgres-startup"),
    "proto-dns-tcp": ("dnsmasq", "tcp", 53, "dns-version-bind-tcp"),
    "proto-dns-udp": ("dnsmasq", "udp", 53, "dns-version-bind-udp"),
    "proto-dns-a-udp": ("dnsmasq", "udp", 53, "dns-a-localhost-udp"),
    "proto-http-proxy": ("tinyproxy", "tcp", 8888, "http-proxy-connect"),
    "proto-socks5-dante": ("dante-server", "tcp", 1081, "socks5-greeting"),
    "proto-socks4-dante": ("dante-server", "tcp", 1081, "socks4-connect"),
    "proto-socks5-microsocks": ("microsocks", "tcp", 1080, "socks5-greeting"),
    "proto-smb": ("samba", "tcp", 445, "smb2-negotiate"),
    "proto-netbios-ns": ("samba", "udp", 137, "netbios-nbstat"),
    "proto-ldap": ("slapd", "tcp", 389, "ldap-bind"),
    "proto-sip-tcp": ("kamailio", "tcp", 5060, "sip-options-tcp"),
    "proto-sip-udp": ("kamailio", "udp", 5060, "sip-options-udp"),
    "proto-irc": ("ngircd", "tcp", 6667, "irc-nick"),
    "proto-git": ("git", "tcp", 9418, "git-upload-pack"),
    "proto-beanstalkd": ("beanstalkd", "tcp", 11300, "beanstalkd-stats"),
    "proto-sunrpc-tcp": ("rpcbind", "tcp", 111, "rpc-null-tcp"),
    "proto-sunrpc-udp": ("rpcbind", "udp", 111, "rpc-null-udp"),
    "proto-stun-tcp": ("coturn", "tcp", 3478, "stun-binding-tcp"),
    "proto-stun-udp": ("coturn", "udp", 3478, "stun-binding-udp"),
    "proto-ntp": ("chrony", "udp", 123, "ntp-client"),
    "proto-coap": ("libcoap3-bin", "udp", 5683, "coap-well-known-core"),
    "proto-ike": ("strongswan-charon", "udp", 500, "ike-main-mode"),
    "proto-openvpn": ("openvpn", "udp", 1194, "openvpn-hard-reset"),
}


def record_protocols() -> dict[str, tuple[bytes, str]]:
    """Start every daemon in a fresh namespace, send each probe, return what came back."""
    probes, _ = merged(load_profiles(["legacy-mgmt"]))
    payload = {p.id: payload_of(p) for p in probes}
    work = Path(tempfile.mkdtemp(prefix="gp-proto-"))
    work.chmod(0o755)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    started: list[subprocess.Popen[bytes]] = []
    samples: dict[str, tuple[bytes, str]] = {}
    try:
        subprocess.run(["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"], check=True)
        log = (work / "daemons.log").open("wb")
        prepared: set[object] = set()
        settle = 2.0
        for daemon in daemons(work):
            if daemon.prepare not in prepared:
                daemon.prepare(work)
                prepared.add(daemon.prepare)
            if shutil.which(daemon.command[0]) is None and not Path(daemon.command[0]).exists():
                print(f"skipped {daemon.package}: {daemon.command[0]} is not installed")
                continue
            started.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", NS, *daemon.command],
                    stdout=log,
                    stderr=log,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **daemon.env},
                    cwd=work,
                )
            )
            if daemon.settle:
                time.sleep(daemon.settle)
            settle = max(settle, daemon.settle)
        time.sleep(settle + 2)
        for key, (package, transport, port, probe) in EXCHANGES.items():
            data = payload[probe] if probe else b""
            reply = tcp_reply(port, data) if transport == "tcp" else udp_reply(port, data)
            if reply:
                samples[key] = (reply, package_version(package))
                print(f"recorded {key}: {len(reply)} bytes from {package}")
            else:
                print(f"no answer for {key} from {package}: its sample stays constructed")
        partial = work / "recorded-partial.json"
        partial.write_text(json.dumps({k: [v.hex(), src] for k, (v, src) in samples.items()}))
    finally:
        for process in started:
            process.terminate()
        deadline = time.monotonic() + 5
        for process in started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # children the daemons forked (socat's per-connection shells, dovecot's workers) are
        # still ours: everything left in the namespace this function made
        for pid in run(["ip", "netns", "pids", NS]).stdout.split():
            run(["kill", "-9", pid])
        subprocess.run(["ip", "netns", "del", NS], check=False)
        print(f"daemon logs: {work / 'daemons.log'}")
    return samples
