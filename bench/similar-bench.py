#!/usr/bin/env python3
"""layerfs similarity-index benchmark (issue 4, point 5): indexing throughput, query latency
through the mount, index size.

Usage (as root):  bench/similar-bench.py [--quick] [--binary PATH] [--dir /var/tmp] [--json]

Generates a fleet of realistic short configuration files (interfaces, systemd units, sshd, nginx,
hosts, fstab, wireguard, haproxy...; different names, addresses and options per host and per
round), imports them into a layerfs store in a work directory under --dir, and measures:

  1. indexing throughput of `layerfs reindex` with each embedder (builtin, minilm);
  2. query latency p50/p99 at 10k and 100k indexed versions with the builtin embedder, through
     the mount (os.listdir of MNT/@similar/<query>#10, every query a new name) and through
     `layerfs similar`; and the mount's own catch-up from 10k to 100k versions;
  3. index size per version (hnsw.bin + meta.json) for each embedder;
  4. MiniLM query latency through the mount.

Python 3 standard library only. bench/README.md ("similar-bench.py") describes every row. Every
mount is unmounted on every exit (normal end, exception, SIGINT/SIGTERM/SIGHUP/SIGQUIT, atexit);
a run killed outright is cleaned up by the next one (owner.pid / mount.pid in its work directory).
"""

import argparse
import atexit
import errno
import json
import math
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PREFIX = "layerfs-similar-bench-"
DEFAULT_MODEL_DIR = "/var/lib/layerfs/models/all-MiniLM-L6-v2"


# ---------------------------------------------------------------------------------------------
# Output helpers

def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    """Raised by the signal handlers so that every `finally` runs."""

    def __init__(self, signum):
        super().__init__(f"signal {signum}")
        self.signum = signum


def fmt_time(seconds):
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_value(value, unit):
    if value is None:
        return "-"
    if unit == "s":
        return fmt_time(value)
    if unit == "versions/s":
        return f"{value:,.0f} versions/s"
    if unit == "B/version":
        return f"{value:,.0f} B/version"
    if unit == "bytes/change":
        return f"{fmt_bytes(value)}/change"
    return f"{value:.3g} {unit}"


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


class Row:
    """One figure: a value with its unit, an optional bound (absolute) and MET / MISSED."""

    def __init__(self, name, unit, value=None, detail="", target=None, better="lower", samples=None,
                 status=None, note=None):
        self.name = name
        self.unit = unit
        self.value = value
        self.detail = detail
        self.target = target
        self.better = better
        self.samples = samples
        self.note = note
        self.status = status or self.judge()

    def judge(self):
        if self.target is None or self.value is None:
            return "-"
        ok = self.value <= self.target if self.better == "lower" else self.value >= self.target
        return "MET" if ok else "MISSED"

    def target_text(self):
        if self.target is None:
            return "-"
        return f"{'<=' if self.better == 'lower' else '>='} {fmt_value(self.target, self.unit)}"

    def cells(self):
        if self.status in ("SKIPPED", "FAILED"):
            return [self.name, "-", "", self.target_text(), self.status]
        return [self.name, fmt_value(self.value, self.unit), self.detail, self.target_text(), self.status]

    def as_json(self):
        return {"figure": self.name, "unit": self.unit, "value": self.value, "detail": self.detail,
                "target": self.target_text() if self.target is not None else None, "status": self.status,
                "samples": self.samples, "note": self.note}


def latency_rows(name, samples, p50_target=None, note=None):
    n = len(samples)
    return [Row(f"{name}, p50", "s", statistics.median(samples), f"{n} queries", p50_target, samples=n, note=note),
            Row(f"{name}, p99", "s", percentile(samples, 99), f"max {fmt_time(max(samples))}", samples=n)]


# ---------------------------------------------------------------------------------------------
# The generated configuration files
#
# File i belongs to host i // FILES_PER_HOST and has slot i % FILES_PER_HOST, which fixes its
# kind and path; its content is drawn from a generator seeded by (seed, i, round), so every
# import round changes every file (new addresses, options, ports...) while its path stays.

FILES_PER_HOST = 25
ROLES = ["web", "db", "cache", "edge", "gw", "mon", "log", "build", "mail", "vpn", "dns", "proxy", "app",
         "queue", "store", "auth", "ci", "lb", "nas", "backup"]
SITES = ["fra", "ams", "par", "lon", "nyc", "sfo", "sin", "tok", "syd", "waw", "mad", "osl"]
DOMAINS = ["example.net", "corp.example.com", "infra.example.org", "lab.example.io"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
         "deploy", "backup", "ansible", "monitor", "postgres", "www-data", "git"]
SERVICES = [
    ("prometheus-node-exporter", "/usr/bin/prometheus-node-exporter --web.listen-address=:{port}", "Prometheus exporter for machine metrics"),
    ("grafana-agent", "/usr/bin/grafana-agent --config.file=/etc/grafana-agent.yaml", "Grafana metrics and logs agent"),
    ("app-api", "/opt/app/bin/api --listen 0.0.0.0:{port} --db postgres://{db}/app", "Application API server"),
    ("app-worker", "/opt/app/bin/worker --queue redis://{db}:6379/{n}", "Background job worker"),
    ("backup-rsync", "/usr/local/bin/backup.sh --target {db}:/srv/backup --bwlimit {n}m", "Nightly backup with rsync"),
    ("haproxy", "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid", "HAProxy load balancer"),
    ("redis-server", "/usr/bin/redis-server /etc/redis/redis.conf --port {port}", "Redis in-memory data store"),
    ("postgresql-exporter", "/usr/bin/postgres_exporter --web.listen-address=:{port}", "PostgreSQL metrics exporter"),
    ("vector", "/usr/bin/vector --config /etc/vector/vector.toml", "Vector log shipper"),
    ("consul", "/usr/bin/consul agent -config-dir=/etc/consul.d -bind {addr}", "Consul service discovery agent"),
    ("minio", "/usr/local/bin/minio server /srv/minio --address :{port}", "MinIO object storage"),
    ("gitlab-runner", "/usr/bin/gitlab-runner run --working-directory /home/gitlab-runner", "GitLab CI runner"),
    ("certbot-renew", "/usr/bin/certbot renew --quiet --deploy-hook 'systemctl reload nginx'", "Renew TLS certificates"),
    ("kafka", "/opt/kafka/bin/kafka-server-start.sh /etc/kafka/server.properties", "Apache Kafka broker"),
    ("unbound", "/usr/sbin/unbound -d -c /etc/unbound/unbound.conf", "Unbound validating DNS resolver"),
    ("nfs-exporter", "/usr/sbin/rpc.mountd --manage-gids --port {port}", "NFS mount daemon"),
]
SITE_NAMES = ["shop", "blog", "api", "status", "docs", "grafana", "git", "wiki", "chat", "files", "auth",
              "metrics", "registry", "cdn", "mail", "support"]
CRON_JOBS = [("logrotate-extra", "/usr/sbin/logrotate /etc/logrotate.d/app"), ("db-dump", "/usr/local/bin/pg-dump-all.sh"),
             ("cert-check", "/usr/local/bin/check-certs --warn-days 21"), ("tmp-clean", "find /var/tmp -mtime +7 -delete"),
             ("sync-mirror", "rsync -a --delete mirror::debian /srv/mirror/debian"), ("report", "/opt/app/bin/report --email ops")]
APPS = ["app", "nginx", "haproxy", "postgresql", "redis", "kafka", "gitlab", "grafana"]
SUDO_TEAMS = ["ops", "dba", "dev", "netops", "security", "oncall"]
DEFAULTS = ["grub", "ufw", "keyboard", "locale", "rsync", "ntpdate", "nfs-common", "docker"]


def ip(rng, net=None):
    net = net or f"10.{rng.randrange(256)}.{rng.randrange(256)}"
    return f"{net}.{rng.randrange(2, 254)}"


def mac(rng):
    return "52:54:00:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))


def iface_name(rng):
    return rng.choice(["eth0", "eth1", "ens3", "ens18", "enp3s0", "enp1s0f0", "eno1", "eno2"])


def gen_interfaces(rng, host, ctx):
    net = ctx["net"]
    a, b = iface_name(rng), rng.choice(["eth1", "enp3s0f1", "eno2", "ens19"])
    out = ["# This file describes the network interfaces available on your system",
           "# and how to activate them. For more information, see interfaces(5).", "",
           "source /etc/network/interfaces.d/*", "", "auto lo", "iface lo inet loopback", ""]
    kind = rng.choice(["static", "static", "dhcp", "bridge", "bond", "vlan"])
    if kind == "dhcp":
        out += [f"allow-hotplug {a}", f"iface {a} inet dhcp", f"    hostname {host}"]
    elif kind == "static":
        out += [f"auto {a}", f"iface {a} inet static", f"    address {ip(rng, net)}/24", f"    gateway {net}.1",
                f"    dns-nameservers {net}.53 {rng.choice(['1.1.1.1', '9.9.9.9', '8.8.8.8'])}",
                f"    dns-search {ctx['domain']}"]
        if rng.random() < 0.4:
            out.append(f"    mtu {rng.choice([1500, 9000, 1450])}")
    elif kind == "bridge":
        br = rng.choice(["br0", "br-lan", "vmbr0", "br1"])
        out += [f"auto {br}", f"iface {br} inet static", f"    address {ip(rng, net)}/24", f"    gateway {net}.1",
                f"    bridge_ports {a}{' ' + b if rng.random() < 0.3 else ''}", f"    bridge_stp {rng.choice(['off', 'on'])}",
                f"    bridge_fd {rng.choice([0, 2, 15])}", f"    bridge_maxwait {rng.choice([0, 5])}"]
    elif kind == "bond":
        out += [f"auto bond0", "iface bond0 inet static", f"    address {ip(rng, net)}/24", f"    gateway {net}.1",
                f"    bond-slaves {a} {b}", f"    bond-mode {rng.choice(['802.3ad', 'active-backup', 'balance-alb'])}",
                f"    bond-miimon {rng.choice([100, 200])}", f"    bond-xmit-hash-policy layer3+4"]
    else:
        vid = rng.randrange(2, 4000)
        out += [f"auto {a}.{vid}", f"iface {a}.{vid} inet static", f"    address {ip(rng, net)}/24",
                f"    vlan-raw-device {a}", f"    # vlan {vid}: {rng.choice(['storage', 'management', 'dmz', 'backup', 'voice'])} network"]
    return "\n".join(out) + "\n"


def gen_hosts(rng, host, ctx):
    net = ctx["net"]
    out = ["127.0.0.1\tlocalhost", f"127.0.1.1\t{host}.{ctx['domain']} {host}", "",
           "# The following lines are desirable for IPv6 capable hosts",
           "::1     localhost ip6-localhost ip6-loopback", "ff02::1 ip6-allnodes", "ff02::2 ip6-allrouters", ""]
    for _ in range(rng.randrange(2, 9)):
        name = f"{rng.choice(ROLES)}-{rng.choice(SITES)}-{rng.randrange(1, 40):02d}"
        out.append(f"{ip(rng, net)}\t{name}.{ctx['domain']} {name}")
    return "\n".join(out) + "\n"


def gen_resolv(rng, host, ctx):
    out = [f"# managed by ansible for {host}", f"search {ctx['domain']} {rng.choice(DOMAINS)}"]
    for server in rng.sample([f"{ctx['net']}.53", "1.1.1.1", "9.9.9.9", "8.8.8.8", "10.0.0.2", "192.168.1.1"], rng.randrange(1, 4)):
        out.append(f"nameserver {server}")
    out.append(f"options timeout:{rng.randrange(1, 5)} attempts:{rng.randrange(1, 4)}{' rotate' if rng.random() < 0.5 else ''}"
               f"{' edns0' if rng.random() < 0.3 else ''}")
    return "\n".join(out) + "\n"


def gen_sshd(rng, host, ctx):
    out = [f"# sshd_config for {host}", "Include /etc/ssh/sshd_config.d/*.conf", ""]
    if rng.random() < 0.5:
        out.append(f"Port {rng.choice([22, 22, 2222, 2022, 8022])}")
    if rng.random() < 0.4:
        out.append(f"ListenAddress {ip(rng, ctx['net'])}")
    out += [f"PermitRootLogin {rng.choice(['no', 'prohibit-password', 'yes', 'without-password'])}",
            f"PasswordAuthentication {rng.choice(['no', 'no', 'yes'])}",
            f"PubkeyAuthentication yes",
            f"KbdInteractiveAuthentication {rng.choice(['no', 'yes'])}",
            f"UsePAM yes",
            f"X11Forwarding {rng.choice(['no', 'yes'])}",
            f"MaxAuthTries {rng.randrange(2, 7)}",
            f"ClientAliveInterval {rng.choice([0, 60, 120, 300])}"]
    if rng.random() < 0.5:
        out.append(f"AllowUsers {' '.join(rng.sample(USERS, rng.randrange(1, 5)))}")
    if rng.random() < 0.3:
        out.append("Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com")
    out += ["AcceptEnv LANG LC_*", "Subsystem sftp /usr/lib/openssh/sftp-server"]
    if rng.random() < 0.3:
        out += ["", f"Match User {rng.choice(USERS)}", f"    ForceCommand internal-sftp", f"    ChrootDirectory /srv/sftp/%u"]
    return "\n".join(out) + "\n"


def gen_fstab(rng, host, ctx):
    out = ["# /etc/fstab: static file system information.", "# <file system> <mount point> <type> <options> <dump> <pass>",
           f"UUID={rng.randbytes(16).hex()[:8]}-{rng.randbytes(4).hex()} /  {rng.choice(['ext4', 'xfs', 'btrfs'])}  "
           f"{rng.choice(['defaults', 'errors=remount-ro', 'noatime,compress=zstd'])}  0  1",
           f"UUID={rng.randbytes(4).hex()} /boot/efi vfat umask=0077 0 1"]
    if rng.random() < 0.5:
        out.append(f"/dev/{rng.choice(['vdb', 'sdb', 'nvme1n1'])}1 /srv/{rng.choice(['data', 'backup', 'db', 'www'])} "
                   f"{rng.choice(['ext4', 'xfs'])} defaults,noatime 0 2")
    if rng.random() < 0.4:
        out.append(f"{ip(rng, ctx['net'])}:/export/{rng.choice(['home', 'share', 'media', 'backup'])} /mnt/nfs nfs4 "
                   f"rw,hard,timeo={rng.choice([600, 150])},_netdev 0 0")
    out.append(f"tmpfs /tmp tmpfs defaults,size={rng.choice([512, 1024, 2048])}m 0 0")
    return "\n".join(out) + "\n"


def gen_sysctl(rng, host, ctx):
    keys = [("net.ipv4.ip_forward", [0, 1]), ("net.core.somaxconn", [1024, 4096, 65535]),
            ("vm.swappiness", [1, 10, 60]), ("net.ipv4.tcp_fin_timeout", [15, 30, 60]),
            ("fs.file-max", [100000, 2097152]), ("net.ipv6.conf.all.disable_ipv6", [0, 1]),
            ("kernel.panic", [0, 10, 30]), ("net.ipv4.tcp_keepalive_time", [600, 7200]),
            ("vm.max_map_count", [65530, 262144]), ("net.core.rmem_max", [212992, 16777216]),
            ("net.ipv4.conf.all.rp_filter", [0, 1, 2]), ("net.bridge.bridge-nf-call-iptables", [0, 1])]
    out = [f"# kernel tuning for {host}"]
    for key, values in rng.sample(keys, rng.randrange(3, 9)):
        out.append(f"{key} = {rng.choice(values)}")
    return "\n".join(out) + "\n"


def gen_chrony(rng, host, ctx):
    out = ["# Welcome to the chrony configuration file.", ""]
    for server in rng.sample(["0.debian.pool.ntp.org", "1.debian.pool.ntp.org", "time.cloudflare.com",
                              f"ntp1.{ctx['domain']}", f"ntp2.{ctx['domain']}", "ptbtime1.ptb.de"], rng.randrange(1, 4)):
        out.append(f"{rng.choice(['pool', 'server'])} {server} iburst{' maxsources 2' if rng.random() < 0.3 else ''}")
    out += ["keyfile /etc/chrony/chrony.keys", "driftfile /var/lib/chrony/chrony.drift",
            f"makestep {rng.choice(['1 3', '1.0 -1', '0.1 3'])}", "rtcsync"]
    if rng.random() < 0.4:
        out.append(f"allow {ctx['net']}.0/24")
    return "\n".join(out) + "\n"


def gen_unit(rng, host, ctx, service):
    name, cmd, desc = service
    port = rng.choice([8080, 9100, 9187, 3000, 5000, 6379, 9000, 8500, 2049])
    cmd = cmd.format(port=port, db=f"{rng.choice(['db', 'cache', 'store'])}-{rng.choice(SITES)}-{rng.randrange(1, 20):02d}",
                     n=rng.randrange(1, 100), addr=ip(rng, ctx["net"]))
    out = ["[Unit]", f"Description={desc}", f"After=network-online.target{' postgresql.service' if rng.random() < 0.2 else ''}",
           "Wants=network-online.target", "", "[Service]", f"Type={rng.choice(['simple', 'simple', 'notify', 'exec', 'oneshot'])}",
           f"User={rng.choice(USERS)}", f"ExecStart={cmd}", f"Restart={rng.choice(['on-failure', 'always', 'no'])}",
           f"RestartSec={rng.choice([1, 5, 10, 30])}"]
    for _ in range(rng.randrange(0, 3)):
        out.append(f"Environment={rng.choice(['GOMAXPROCS', 'LOG_LEVEL', 'RUST_LOG', 'TZ', 'HTTP_PROXY'])}="
                   f"{rng.choice(['2', 'info', 'debug', 'UTC', 'http://' + ip(rng, ctx['net']) + ':3128'])}")
    if rng.random() < 0.5:
        out += [f"LimitNOFILE={rng.choice([4096, 65536, 1048576])}", "NoNewPrivileges=true",
                f"ProtectSystem={rng.choice(['full', 'strict'])}"]
    out += ["", "[Install]", f"WantedBy={rng.choice(['multi-user.target', 'multi-user.target', 'timers.target'])}"]
    return "\n".join(out) + "\n"


def gen_nginx(rng, host, ctx, site):
    fqdn = f"{site}.{ctx['domain']}"
    backend = f"{ip(rng, ctx['net'])}:{rng.choice([8080, 3000, 5000, 8000, 9000])}"
    tls = rng.random() < 0.7
    out = [f"# {fqdn} on {host}"]
    if rng.random() < 0.4:
        out += [f"upstream {site}_backend {{", f"    server {backend};"]
        for _ in range(rng.randrange(1, 3)):
            out.append(f"    server {ip(rng, ctx['net'])}:{rng.choice([8080, 3000])}{' backup' if rng.random() < 0.3 else ''};")
        out += ["}", ""]
        backend = f"{site}_backend"
    out += ["server {", f"    listen {'443 ssl http2' if tls else '80'};", f"    server_name {fqdn}{' www.' + fqdn if rng.random() < 0.3 else ''};"]
    if tls:
        out += [f"    ssl_certificate /etc/letsencrypt/live/{fqdn}/fullchain.pem",
                f"    ssl_certificate_key /etc/letsencrypt/live/{fqdn}/privkey.pem;",
                f"    ssl_protocols {rng.choice(['TLSv1.2 TLSv1.3', 'TLSv1.3'])};"]
    out += [f"    access_log /var/log/nginx/{site}.access.log;",
            f"    client_max_body_size {rng.choice([1, 10, 50, 100])}m;", "",
            "    location / {"]
    if rng.random() < 0.6:
        out += [f"        proxy_pass http://{backend};", "        proxy_set_header Host $host;",
                "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                f"        proxy_read_timeout {rng.choice([30, 60, 300])}s;"]
    else:
        out += [f"        root /var/www/{site};", "        try_files $uri $uri/ =404;"]
    out.append("    }")
    if rng.random() < 0.3:
        out += ["", "    location /metrics {", f"        allow {ctx['net']}.0/24;", "        deny all;", "    }"]
    out.append("}")
    if tls and rng.random() < 0.5:
        out += ["", "server {", "    listen 80;", f"    server_name {fqdn};", "    return 301 https://$host$request_uri;", "}"]
    return "\n".join(out) + "\n"


def gen_netplan(rng, host, ctx):
    a = iface_name(rng)
    out = ["network:", "  version: 2", f"  renderer: {rng.choice(['networkd', 'NetworkManager'])}", "  ethernets:", f"    {a}:"]
    if rng.random() < 0.4:
        out.append("      dhcp4: true")
    else:
        out += ["      dhcp4: false", f"      addresses: [{ip(rng, ctx['net'])}/24]", "      routes:",
                f"        - to: default", f"          via: {ctx['net']}.1",
                f"      nameservers:", f"        addresses: [{ctx['net']}.53, 1.1.1.1]", f"        search: [{ctx['domain']}]"]
    out.append(f"      match:\n        macaddress: {mac(rng)}")
    return "\n".join(out) + "\n"


def gen_cron(rng, host, ctx, job):
    name, cmd = job
    return (f"# /etc/cron.d/{name}: {host}\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n"
            f"MAILTO={rng.choice(USERS)}@{ctx['domain']}\n"
            f"{rng.randrange(60)} {rng.choice(['*', rng.randrange(24)])} * * {rng.choice(['*', '1-5', '0', '6'])} "
            f"{rng.choice(['root', 'backup', 'deploy'])} {cmd}\n")


def gen_wireguard(rng, host, ctx):
    out = ["[Interface]", f"# {host}", f"Address = 10.{rng.randrange(100, 200)}.{rng.randrange(256)}.{rng.randrange(2, 254)}/24",
           f"ListenPort = {rng.choice([51820, 51821, 41194])}",
           f"PrivateKey = {rng.randbytes(32).hex()[:43]}=", ""]
    for _ in range(rng.randrange(1, 4)):
        peer = f"{rng.choice(ROLES)}-{rng.choice(SITES)}-{rng.randrange(1, 40):02d}"
        out += ["[Peer]", f"# {peer}", f"PublicKey = {rng.randbytes(32).hex()[:43]}=",
                f"AllowedIPs = 10.{rng.randrange(100, 200)}.{rng.randrange(256)}.0/24",
                f"Endpoint = {peer}.{ctx['domain']}:51820", f"PersistentKeepalive = {rng.choice([15, 25])}", ""]
    return "\n".join(out)


def gen_haproxy(rng, host, ctx):
    out = ["global", "    log /dev/log local0", f"    maxconn {rng.choice([2000, 4096, 20000])}", "    user haproxy", "    group haproxy",
           "", "defaults", "    mode http", f"    timeout connect {rng.choice([5, 10])}s", f"    timeout client {rng.choice([30, 50, 60])}s",
           f"    timeout server {rng.choice([30, 50, 60])}s", "",
           f"frontend {rng.choice(SITE_NAMES)}_front", f"    bind *:{rng.choice([80, 443, 8443])}", "    default_backend app_servers", "",
           "backend app_servers", f"    balance {rng.choice(['roundrobin', 'leastconn', 'source'])}", "    option httpchk GET /health"]
    for i in range(rng.randrange(2, 6)):
        out.append(f"    server app{i + 1} {ip(rng, ctx['net'])}:{rng.choice([8080, 3000])} check")
    return "\n".join(out) + "\n"


def gen_logrotate(rng, host, ctx, app):
    return (f"/var/log/{app}/*.log {{\n    {rng.choice(['daily', 'weekly', 'monthly'])}\n    rotate {rng.choice([4, 7, 14, 30, 52])}\n"
            f"    missingok\n    notifempty\n    {rng.choice(['compress', 'compress', 'nocompress'])}\n    delaycompress\n"
            f"    create 0640 {rng.choice(['root', app, 'www-data'])} adm\n    postrotate\n"
            f"        systemctl reload {app} > /dev/null 2>&1 || true\n    endscript\n}}\n")


def gen_pg_hba(rng, host, ctx):
    out = ["# PostgreSQL Client Authentication Configuration File", "# TYPE  DATABASE  USER  ADDRESS  METHOD",
           "local   all       postgres                 peer", "local   all       all                      peer",
           "host    all       all       127.0.0.1/32   scram-sha-256"]
    for _ in range(rng.randrange(1, 5)):
        out.append(f"host{rng.choice(['', 'ssl'])}    {rng.choice(['all', 'app', 'replication', 'metrics'])}  "
                   f"{rng.choice(['all', 'app', 'replicator', 'grafana'])}  {ctx['net']}.{rng.randrange(0, 255)}/{rng.choice([24, 32])}  "
                   f"{rng.choice(['scram-sha-256', 'md5', 'trust', 'cert'])}")
    return "\n".join(out) + "\n"


def gen_nftables(rng, host, ctx):
    ports = sorted(rng.sample([22, 80, 443, 5432, 6379, 8080, 9100, 51820, 53, 25, 587, 993], rng.randrange(2, 6)))
    out = ["#!/usr/sbin/nft -f", "flush ruleset", "", "table inet filter {", "    chain input {",
           f"        type filter hook input priority 0; policy {rng.choice(['drop', 'drop', 'accept'])};",
           "        ct state established,related accept", "        iif lo accept",
           f"        tcp dport {{ {', '.join(map(str, ports))} }} accept"]
    if rng.random() < 0.5:
        out.append(f"        ip saddr {ctx['net']}.0/24 tcp dport 22 accept")
    out += ["        icmp type echo-request limit rate 5/second accept", "    }",
            "    chain forward {", f"        type filter hook forward priority 0; policy {rng.choice(['drop', 'accept'])};", "    }", "}"]
    return "\n".join(out) + "\n"


def gen_iface_d(rng, host, ctx):
    net, a = ctx["net"], iface_name(rng)
    kind = rng.choice(["bridge", "bond", "vlan", "static"])
    if kind == "bridge":
        br = rng.choice(["br0", "br1", "vmbr1", "br-storage"])
        return (f"# bridge for virtual machines on {host}\nauto {br}\niface {br} inet static\n    address {ip(rng, net)}/24\n"
                f"    bridge_ports {a}\n    bridge_stp off\n    bridge_fd 0\n")
    if kind == "bond":
        return (f"auto bond1\niface bond1 inet manual\n    bond-slaves {a} {rng.choice(['eth2', 'eth3', 'ens20'])}\n"
                f"    bond-mode {rng.choice(['802.3ad', 'active-backup'])}\n    bond-lacp-rate fast\n")
    if kind == "vlan":
        vid = rng.randrange(2, 4000)
        return f"auto {a}.{vid}\niface {a}.{vid} inet manual\n    vlan-raw-device {a}\n"
    return f"auto {a}:1\niface {a}:1 inet static\n    address {ip(rng, net)}/32\n    # service address of {host}\n"


def gen_default(rng, host, ctx, name):
    pairs = {"grub": [("GRUB_DEFAULT", "0"), ("GRUB_TIMEOUT", str(rng.choice([0, 1, 5]))),
                      ("GRUB_CMDLINE_LINUX_DEFAULT", rng.choice(['"quiet"', '"quiet splash"', '"console=ttyS0,115200"']))],
             "ufw": [("IPV6", rng.choice(["yes", "no"])), ("DEFAULT_INPUT_POLICY", rng.choice(['"DROP"', '"ACCEPT"'])),
                     ("DEFAULT_FORWARD_POLICY", '"DROP"')],
             "keyboard": [("XKBMODEL", '"pc105"'), ("XKBLAYOUT", rng.choice(['"us"', '"de"', '"fr"', '"gb"']))],
             "locale": [("LANG", rng.choice(["en_US.UTF-8", "de_DE.UTF-8", "C.UTF-8"]))],
             "rsync": [("RSYNC_ENABLE", rng.choice(["true", "false", "inetd"])), ("RSYNC_NICE", str(rng.randrange(0, 20)))],
             "ntpdate": [("NTPDATE_USE_NTP_CONF", rng.choice(["yes", "no"])), ("NTPSERVERS", f'"ntp1.{ctx["domain"]}"')],
             "nfs-common": [("NEED_STATD", rng.choice(["yes", "no", '""'])), ("NEED_IDMAPD", rng.choice(["yes", "no"]))],
             "docker": [("DOCKER_OPTS", f'"--dns {ctx["net"]}.53 --log-driver={rng.choice(["journald", "json-file"])}"')]}
    return f"# /etc/default/{name}\n" + "".join(f"{k}={v}\n" for k, v in pairs[name])


def gen_sudoers(rng, host, ctx, team):
    users = rng.sample(USERS, rng.randrange(1, 4))
    cmds = rng.choice(["ALL", "/usr/bin/systemctl restart *, /usr/bin/journalctl", "/usr/bin/apt-get update, /usr/bin/apt-get upgrade",
                       "/usr/bin/psql, /usr/bin/pg_dump"])
    return (f"# {team} on {host}\nUser_Alias {team.upper()} = {', '.join(users)}\n"
            f"{team.upper()} ALL=(ALL) {'NOPASSWD: ' if rng.random() < 0.5 else ''}{cmds}\n"
            f"Defaults:{users[0]} {rng.choice(['!requiretty', 'timestamp_timeout=15', 'logfile=/var/log/sudo.log'])}\n")


def host_of(h):
    return f"{ROLES[h % len(ROLES)]}-{SITES[(h // len(ROLES)) % len(SITES)]}-{h // (len(ROLES) * len(SITES)) + 1:02d}"


def config_file(i, rnd, seed):
    """(relative path, text) of generated file i in import round rnd: a new text in every round
    (the rare draw equal to the previous round's gets a revision comment)."""
    path, text = config_text(i, rnd, seed)
    if rnd > 0 and text == config_text(i, rnd - 1, seed)[1]:
        text += f"# revision {rnd + 1}\n"
    return path, text


def config_text(i, rnd, seed):
    h, slot = divmod(i, FILES_PER_HOST)
    host = host_of(h)
    rng = random.Random(f"{seed}/{i}/{rnd}")
    hr = random.Random(f"{seed}/host/{h}")  # per host, the same in every round
    ctx = {"net": f"10.{hr.randrange(256)}.{hr.randrange(256)}", "domain": hr.choice(DOMAINS)}
    base = f"{host}/etc"
    if slot == 0:
        return f"{base}/network/interfaces", gen_interfaces(rng, host, ctx)
    if slot == 1:
        return f"{base}/hosts", gen_hosts(rng, host, ctx)
    if slot == 2:
        return f"{base}/resolv.conf", gen_resolv(rng, host, ctx)
    if slot == 3:
        return f"{base}/ssh/sshd_config", gen_sshd(rng, host, ctx)
    if slot == 4:
        return f"{base}/fstab", gen_fstab(rng, host, ctx)
    if slot == 5:
        return f"{base}/sysctl.d/60-tuning.conf", gen_sysctl(rng, host, ctx)
    if slot == 6:
        return f"{base}/chrony/chrony.conf", gen_chrony(rng, host, ctx)
    if 7 <= slot <= 10:
        service = SERVICES[(h * 4 + slot - 7) % len(SERVICES)]
        return f"{base}/systemd/system/{service[0]}.service", gen_unit(rng, host, ctx, service)
    if 11 <= slot <= 13:
        site = SITE_NAMES[(h * 3 + slot - 11) % len(SITE_NAMES)]
        return f"{base}/nginx/sites-available/{site}", gen_nginx(rng, host, ctx, site)
    if slot == 14:
        return f"{base}/netplan/50-cloud-init.yaml", gen_netplan(rng, host, ctx)
    if slot == 15:
        job = CRON_JOBS[h % len(CRON_JOBS)]
        return f"{base}/cron.d/{job[0]}", gen_cron(rng, host, ctx, job)
    if slot == 16:
        return f"{base}/wireguard/wg0.conf", gen_wireguard(rng, host, ctx)
    if slot == 17:
        return f"{base}/haproxy/haproxy.cfg", gen_haproxy(rng, host, ctx)
    if slot == 18:
        app = APPS[h % len(APPS)]
        return f"{base}/logrotate.d/{app}", gen_logrotate(rng, host, ctx, app)
    if slot == 19:
        return f"{base}/postgresql/15/main/pg_hba.conf", gen_pg_hba(rng, host, ctx)
    if slot == 20:
        return f"{base}/nftables.conf", gen_nftables(rng, host, ctx)
    if slot == 21:
        return f"{base}/network/interfaces.d/{hr.choice(['vm', 'storage', 'extra'])}-{h % 7}", gen_iface_d(rng, host, ctx)
    if slot == 22:
        name = DEFAULTS[h % len(DEFAULTS)]
        return f"{base}/default/{name}", gen_default(rng, host, ctx, name)
    if slot == 23:
        team = SUDO_TEAMS[h % len(SUDO_TEAMS)]
        return f"{base}/sudoers.d/{team}", gen_sudoers(rng, host, ctx, team)
    stage, role, site = rng.choice(["production", "staging", "lab"]), ROLES[h % len(ROLES)], SITES[(h // len(ROLES)) % len(SITES)]
    return f"{base}/motd", f"{host}: {stage} {role} server in {site}.\nOwner: {rng.choice(USERS)}. Ticket OPS-{rng.randrange(1000, 9999)}.\n"


def write_tree(root, files, rnd, seed):
    """Writes (or rewrites) the generated tree for round `rnd`; returns the texts' total bytes
    and how many of them define a bridge."""
    total = bridges = 0
    made = set()
    for i in range(files):
        rel, text = config_file(i, rnd, seed)
        path = os.path.join(root, rel)
        parent = os.path.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        data = text.encode()
        with open(path, "wb") as f:
            f.write(data)
        total += len(data)
        bridges += "bridge_ports" in text
    return total, bridges


def wordpiece_counts(texts, vocab_path):
    """Approximate all-MiniLM-L6-v2 token counts ([CLS] + WordPiece tokens + [SEP]) of `texts`:
    BERT's basic tokenizer (lowercase, split on whitespace and punctuation) and greedy longest
    match over vocab.txt. Exact enough for ASCII configuration text; for the notes only."""
    with open(vocab_path, encoding="utf-8") as f:
        vocab = {line.rstrip("\n") for line in f}
    split = re.compile(r"[A-Za-z0-9\u0080-\uffff]+|[^\sA-Za-z0-9\u0080-\uffff]")
    counts = []
    for text in texts:
        n = 2
        for word in split.findall(text.lower()):
            start, pieces = 0, 0
            while start < len(word):
                end = len(word)
                while end > start and (("##" if start else "") + word[start:end]) not in vocab:
                    end -= 1
                if end == start:  # no piece matches: the whole word is [UNK]
                    pieces = 1
                    break
                pieces += 1
                start = end
            n += pieces
        counts.append(n)
    return counts


# ---------------------------------------------------------------------------------------------
# The queries: every one a new name (the mount caches a query's result for 2 s by name)

TOPICS = [
    "which interfaces are bridges", "bridge ports of the virtual machine bridge", "bonded interfaces with lacp",
    "vlan interface on the storage network", "static address and default gateway", "dns nameservers and search domain",
    "ssh root login allowed", "password authentication enabled for ssh", "sftp chroot for a user",
    "nginx reverse proxy to a backend", "tls certificate for the api site", "redirect http to https",
    "upstream servers with a backup server", "systemd service that always restarts", "prometheus node exporter listen port",
    "worker reading a redis queue", "nightly backup with rsync", "kafka broker service", "consul agent bind address",
    "haproxy round robin backend", "haproxy http health check", "postgres replication access", "pg_hba trust method",
    "firewall allows ssh from the local network", "nftables input policy drop", "ip forwarding enabled",
    "swappiness tuning", "nfs mount in fstab", "tmpfs size for tmp", "btrfs root file system with compression",
    "ntp servers with iburst", "chrony allows a subnet", "wireguard peer endpoint", "wireguard listen port",
    "cron job that dumps the database", "certificate expiry check", "logrotate daily with compression",
    "sudo without password for the ops team", "netplan static address", "docker dns option", "grub serial console",
    "which server is production and who owns it", "jumbo frames mtu 9000", "ipv6 disabled", "open file limit of a service",
    "proxy environment variable", "minio object storage port", "gitlab runner working directory",
    "client max body size", "unbound dns resolver",
]
QUERY_WORDS = ["on", "for", "in", "config", "setting", "where", "host", "server", "please", "file", "with", "show"]


class Queries:
    """Distinct query names, never repeated within a run."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.seen = set()
        self.n = 0

    def next(self):
        while True:
            self.n += 1
            topic = TOPICS[self.n % len(TOPICS)]
            r = self.rng.random()
            if r < 0.35:
                extra = f"{self.rng.choice(QUERY_WORDS)} {host_of(self.rng.randrange(2000))}"
            elif r < 0.6:
                extra = f"{self.rng.choice(SITES)} {self.rng.choice(ROLES)}"
            elif r < 0.8:
                extra = f"{self.rng.choice(QUERY_WORDS)} {self.rng.choice(USERS)} {self.rng.randrange(1, 100)}"
            else:
                extra = f"port {self.rng.randrange(1, 65536)}"
            q = f"{topic} {extra}"
            if q not in self.seen:
                self.seen.add(q)
                return q


# ---------------------------------------------------------------------------------------------
# Processes, mounts, teardown

def run(cmd, check=True, **kw):
    """Runs a command in its own session (a Ctrl-C reaches only this script, which then tears
    down in order, never an `umount` in progress)."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, **kw)
    if check and p.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace').strip()[-800:]}")
    return p


def run_usage(cmd):
    """Runs `cmd` in its own session; returns (wall seconds, stdout, stderr). Raises on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out, err = b"", b""
    try:
        out, err = p.communicate()
    finally:
        if p.returncode is None:
            p.kill()
            p.wait()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {p.returncode}: {err.decode(errors='replace').strip()[-800:]}")
    return wall, out.decode(errors="replace"), err.decode(errors="replace")


def children_usage():
    """User and system CPU seconds and blocks written (512 bytes, Linux: the task's write_bytes)
    of the children reaped so far: the difference around one command is that command's."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime, r.ru_stime, r.ru_oublock


def mounts():
    """(source, mount point, type) of every mount, from /proc/mounts."""
    def unescape(s):
        return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)
    out = []
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((unescape(parts[0]), unescape(parts[1]), parts[2]))
    return out


def mounted_under(root):
    root = os.path.realpath(root)
    return [m for m in mounts() if m[1] == root or m[1].startswith(root + "/")]


def is_mounted(path):
    path = os.path.realpath(path)
    return any(m[1] == path for m in mounts())


def unmount(path):
    """Unmounts a FUSE mount, lazily if it stays busy. True when it is no longer mounted."""
    for attempt in range(3):
        if not is_mounted(path):
            return True
        run(["fusermount3", "-u", path], check=False)
        if not is_mounted(path):
            return True
        time.sleep(0.5 * (attempt + 1))
    run(["fusermount3", "-u", "-z", path], check=False)
    if is_mounted(path):
        run(["umount", "-l", path], check=False)
    return not is_mounted(path)


def process_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


HANDLED_SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]


def on_signal(signum, frame):
    raise Interrupted(signum)


class Teardown:
    """Every mount this run made, undone exactly once; the work directory removed when clean."""

    def __init__(self):
        self.work = None
        self.fuse = []   # [mount point, Popen] of mounts still up
        self.done = False
        self.keep = False
        self.report = []

    @staticmethod
    def reap(proc, timeout):
        """Waits for our mount process with wait4 (for its rusage); None if it did not exit in time."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.returncode is not None:
                return None
            try:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:
                proc.wait()
                return None
            if pid == proc.pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return usage
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            time.sleep(0.02)

    def fuse_down(self, mnt, proc):
        """Unmounts and waits for the mount process; returns (clean, rusage of the process)."""
        ok = unmount(mnt)
        usage = None
        if proc is not None:
            try:
                usage = self.reap(proc, 120)  # the mount saves its index on the way out
            except subprocess.TimeoutExpired:
                proc.terminate()  # the mount we started: SIGTERM unmounts it cleanly
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            ok = unmount(mnt) and ok
        return ok, usage

    def unmount_one(self, mnt):
        """Unmounts one of our mounts now (between phases); returns (seconds from the unmount to
        the process's exit, bytes the process wrote in its life)."""
        for entry in list(self.fuse):
            if entry[0] == mnt:
                t0 = time.perf_counter()
                ok, usage = self.fuse_down(*entry)
                self.fuse.remove(entry)
                if not ok:
                    raise BenchError(f"could not unmount {mnt}")
                return time.perf_counter() - t0, usage.ru_oublock * 512 if usage else None
        return None, None

    def __call__(self):
        if self.done:
            return
        self.done = True
        old = {s: signal.signal(s, signal.SIG_IGN) for s in HANDLED_SIGNALS}
        try:
            clean = True
            for mnt, proc in reversed(self.fuse):
                if not self.fuse_down(mnt, proc)[0]:
                    clean = False
                    self.report.append(f"could not unmount {mnt}")
            self.fuse = []
            if self.work:
                left = mounted_under(self.work)
                if left:
                    clean = False
                    self.report.append(f"still mounted under {self.work}: {[m[1] for m in left]}")
                elif clean and not self.keep:
                    shutil.rmtree(self.work, ignore_errors=True)
            ours = [m[1] for m in mounts() if self.work and m[1].startswith(os.path.realpath(self.work))]
            fuse_layerfs = [m[1] for m in mounts() if m[2].startswith("fuse") and self.work
                            and os.path.realpath(self.work) in m[1]]
            self.report.append("teardown: /proc/mounts checked: " + (
                "nothing of this run is mounted" if not ours and not fuse_layerfs else f"LEFT BEHIND: {ours + fuse_layerfs}"))
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def clean_stale(base):
    """Removes what a run killed outright (SIGKILL, power) left under `base`: a work directory whose
    owner.pid is dead: its mount processes (only if still layerfs mounts of that run), its mounts,
    then the directory."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(PREFIX):
            continue
        work = os.path.join(base, name)
        try:
            with open(os.path.join(work, "owner.pid")) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if owner and process_alive(owner):
            continue
        log(f"cleaning up a previous run's leftovers in {work}")
        try:
            with open(os.path.join(work, "mount.pids")) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pids = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
                if cmdline and b"layerfs" in cmdline[0] and b"mount" in cmdline and any(work.encode() in c for c in cmdline):
                    os.kill(pid, signal.SIGTERM)
                    time.sleep(1)
            except (OSError, ValueError):
                pass
        for _, mnt, _kind in sorted(mounted_under(work), key=lambda m: -len(m[1])):
            unmount(mnt)
        if not mounted_under(work):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"  could not clean {work} completely; left as is")


# ---------------------------------------------------------------------------------------------
# The index

STATUS_INDEXED = re.compile(r"indexed\s+through event (\d+) of (\d+) \((\d+) behind\)")


def read_status(mnt):
    """The mount's /@similar/.status as a dict (state, versions, last, head, behind)."""
    with open(os.path.join(mnt, "@similar", ".status")) as f:
        text = f.read()
    out = {"text": text}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "state":
            out["state"] = value
        elif key == "versions":
            out["versions"] = int(value)
    m = STATUS_INDEXED.search(text)
    if m:
        out["last"], out["head"], out["behind"] = int(m.group(1)), int(m.group(2)), int(m.group(3))
    return out


def read_meta(index_dir):
    try:
        with open(os.path.join(index_dir, "meta.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def index_bytes(index_dir):
    return sum(os.path.getsize(os.path.join(index_dir, n)) for n in ("hnsw.bin", "meta.json"))


def index_size(index_dir):
    """(bytes of hnsw.bin + meta.json, versions, dimension) of a saved index."""
    meta = read_meta(index_dir)
    if not meta:
        raise BenchError(f"no readable meta.json in {index_dir}")
    return index_bytes(index_dir), meta["count"], meta["dimension"]


def proc_io(pid):
    """write_bytes and CPU seconds (user + system) of a live process."""
    written = None
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    written = int(line.split()[1])
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return written, None
    return written, cpu


def fmt_bytes(n):
    if n is None:
        return "?"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------------------------
# The benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.binary = args.binary
        if self.quick:
            self.files, self.rounds, self.minilm_files = 2_000, 5, 300
            self.queries, self.cli_queries, self.minilm_queries = 200, 5, 100
        else:
            self.files, self.rounds, self.minilm_files = 10_000, 10, 1_500
            self.queries, self.cli_queries, self.minilm_queries = 300, 20, 200
        self.files = args.files or self.files
        self.rounds = args.rounds or self.rounds
        self.minilm_files = args.minilm_files if args.minilm_files is not None else self.minilm_files
        self.queries = args.queries or self.queries
        self.teardown = Teardown()
        self.rows = []
        self.notes = []
        self.failures = 0
        self.qnames = Queries(seed=17)
        self.mount_count = 0

    # -- helpers --

    def cmd(self, *args):
        return [self.binary, *args]

    def index_args(self, index_dir, embedder):
        out = ["--index-dir", index_dir, "--embedder", embedder]
        if embedder == "minilm" and self.args.model_dir:
            out += ["--model-dir", self.args.model_dir]
        return out

    def reindex(self, store, index_dir, embedder):
        """`layerfs reindex`: versions, events, embedder id, the seconds it printed, wall seconds,
        bytes it wrote, CPU seconds, and the seconds the throughput is computed from."""
        u0 = children_usage()
        wall, out, _ = run_usage(self.cmd("reindex", store, *self.index_args(index_dir, embedder)))
        u1 = children_usage()
        m = re.search(r"indexed (\d+) versions of (\d+) events with (\S+) in ([\d.]+) s", out)
        if not m:
            raise BenchError(f"layerfs reindex printed: {out.strip()[-400:]}")
        r = {"versions": int(m.group(1)), "events": int(m.group(2)), "embedder_id": m.group(3),
             "printed": float(m.group(4)), "wall": wall, "written": (u1[2] - u0[2]) * 512,
             "cpu": (u1[0] - u0[0]) + (u1[1] - u0[1])}
        # The printed time (indexing alone) has one decimal: below 2 s, the wall time of the
        # command (which adds process start and opening the store) is the better figure.
        r["seconds"] = r["printed"] if r["printed"] >= 2 else wall
        r["timing"] = (f"{r['printed']:.1f} s printed by reindex, {wall:.2f} s exec to exit" if r["printed"] >= 2
                       else f"{wall:.2f} s exec to exit (reindex printed {r['printed']:.1f} s)")
        return r

    def make_store(self, name, files, seed):
        """A new store with `files` generated files imported (round 0); returns (store, source
        tree, mean file size, files that define a bridge)."""
        src = os.path.join(self.work, f"{name}-src")
        store = os.path.join(self.work, name)
        run(self.cmd("init", store))
        t0 = time.perf_counter()
        total, bridges = write_tree(src, files, 0, seed)
        run(self.cmd("import", store, src))
        log(f"{name}: {files:,} files ({total / files:.0f} bytes each on average) imported "
            f"({time.perf_counter() - t0:.1f} s)")
        return store, src, total / files, bridges

    def mount(self, store, index_dir, embedder, rw=False):
        """Mounts `store` (read-only unless `rw`) with its index; returns (mount point, Popen,
        seconds to mounted, log path)."""
        self.mount_count += 1
        mnt = os.path.join(self.work, f"mnt-{self.mount_count}")
        os.mkdir(mnt)
        opts = f"{'rw' if rw else 'ro'},index_dir={index_dir}"
        if embedder != "builtin":
            opts += f",embedder={embedder}"
            if self.args.model_dir:
                opts += f",model_dir={self.args.model_dir}"
        logpath = os.path.join(self.work, f"mount-{self.mount_count}.log")
        logf = open(logpath, "wb")
        t0 = time.perf_counter()
        proc = subprocess.Popen(self.cmd("mount", "-f", "-o", opts, store, mnt), stdout=logf, stderr=logf,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        self.teardown.fuse.append([mnt, proc])
        with open(os.path.join(self.work, "mount.pids"), "a") as f:
            f.write(f"{proc.pid}\n")
        deadline = time.monotonic() + 60
        while not any(m[1] == os.path.realpath(mnt) and m[2].startswith("fuse") for m in mounts()):
            if proc.poll() is not None:
                raise BenchError(f"layerfs mount exited {proc.returncode}: {open(logpath).read()[-800:]}")
            if time.monotonic() > deadline:
                raise BenchError("layerfs mount did not appear in /proc/mounts within 60 s")
            time.sleep(0.02)
        return mnt, proc, time.perf_counter() - t0, logpath

    def wait_caught_up(self, mnt, proc, index_dir, during=None, timeout=3600):
        """Polls .status until the index is ready and 0 behind, then until meta.json records the
        head (the mount's save when caught up). `during()` is called between polls (queries while
        it indexes) once the index answers queries. Returns (seconds to 0 behind, seconds to saved,
        status), from the call; self.first_state and self.ready_after say what .status showed first
        and when it first said ready (until then a query fails with EAGAIN)."""
        t0 = time.perf_counter()
        caught = None
        status = None
        self.first_state, self.ready_after = None, None
        while True:
            if proc.poll() is not None:
                raise BenchError(f"the mount exited ({proc.returncode}) while indexing")
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"the index was not caught up after {timeout} s: {status and status['text']}")
            try:
                status = read_status(mnt)
            except OSError as e:
                raise BenchError(f"reading {mnt}/@similar/.status: {e}")
            if status.get("state", "").startswith("unavailable"):
                raise BenchError(f"the index is unavailable: {status['text'].strip()}")
            if self.first_state is None:
                self.first_state = status.get("state")
            if self.ready_after is None and status.get("state") == "ready":
                self.ready_after = time.perf_counter() - t0
            if caught is None and status.get("state") == "ready" and status.get("behind") == 0:
                caught = time.perf_counter() - t0
            if caught is not None:
                meta = read_meta(index_dir)
                if meta and meta.get("lastSeq") == status.get("head"):
                    return caught, time.perf_counter() - t0, status
            if during and caught is None and self.ready_after is not None:
                during()
            else:
                time.sleep(0.05)

    def mount_query(self, mnt, query, k=10):
        """os.listdir of MNT/@similar/<query>#k, timed; returns (seconds, entries)."""
        path = os.path.join(mnt, "@similar", f"{query}#{k}")
        t0 = time.perf_counter()
        try:
            names = os.listdir(path)
        except OSError as e:
            raise BenchError(f"ls {path!r}: {e}")
        return time.perf_counter() - t0, names

    def mount_latencies(self, mnt, n, k=10):
        """n new queries through the mount (after 2 s of quiet and 5 untimed queries); returns
        (latencies, results, short answers). The quiet: right after the daemon's save, freeing the
        index file it replaced and writing back its pages delay a few queries by 20-40 ms on a
        2-core machine; the figure is the settled index's (see the row measured while indexing)."""
        time.sleep(2)
        for _ in range(5):
            self.mount_query(mnt, self.qnames.next(), k)
        lat, results, short = [], {}, 0
        for _ in range(n):
            q = self.qnames.next()
            dt, names = self.mount_query(mnt, q, k)
            lat.append(dt)
            results[q] = names
            if len(names) != k:
                short += 1
        return lat, results, short

    def cli_latencies(self, store, index_dir, embedder, queries, mount_results):
        """`layerfs similar --json` per query, timed from exec to exit; compares each answer with
        what the mount listed for the same query. Returns (latencies, agreeing answers)."""
        lat, agree = [], 0
        for q in queries:
            t0 = time.perf_counter()
            p = subprocess.run(self.cmd("similar", store, q, "--json", *self.index_args(index_dir, embedder)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            lat.append(time.perf_counter() - t0)
            if p.returncode != 0:
                raise BenchError(f"layerfs similar exited {p.returncode}: {p.stderr.decode(errors='replace')[-400:]}")
            cli = [(o["path"], o["time"]) for o in map(json.loads, p.stdout.decode().splitlines())]
            listed = []
            for name in sorted(mount_results.get(q, [])):
                _rank, rest = name.split(" ", 1)
                path, _, when = rest.rpartition(" ")
                listed.append(("/" + path.replace("\u2215", "/"), when))
            agree += cli == listed
        return lat, agree

    def bridge_check(self, mnt, label, available):
        """Sanity of the answers: how many of the top 10 for a question about bridges define one."""
        d = os.path.join(mnt, "@similar", "which interfaces are bridges")
        names = sorted(os.listdir(d))
        hits = 0
        for name in names:
            with open(os.path.join(d, name), errors="replace") as f:
                text = f.read()
            hits += "bridge_ports" in text or "bridge-ports" in text
        self.notes.append(f"answers ({label}): {hits} of the top {len(names)} for 'which interfaces are bridges' "
                          f"define a bridge (bridge_ports; {available:,} of the versions indexed do); first: {names[0] if names else '-'}")

    def unmount(self, mnt, proc, label, index_dir):
        """Unmounts one of our mounts, noting how long the daemon took to exit and what it wrote
        while ending."""
        before, _ = proc_io(proc.pid)
        seconds, total = self.teardown.unmount_one(mnt)
        if before is not None and total is not None:
            self.notes.append(f"unmount ({label}): the daemon exited {seconds:.1f} s after fusermount3 -u and wrote "
                              f"{fmt_bytes(total - before)} while ending (the index: {fmt_bytes(index_bytes(index_dir))})")

    # -- phases --

    def phase_builtin(self):
        small, large = self.files, self.files * self.rounds
        idx = os.path.join(self.work, "index-builtin")
        store, src, mean, bridges = self.make_store("store-builtin", self.files, seed=1)
        self.text_bytes = mean

        # 1. layerfs reindex at the small size.
        r = self.reindex(store, idx, "builtin")
        self.builtin_id = r["embedder_id"]
        self.rows.append(Row(f"builtin, layerfs reindex, {r['versions']:,} versions", "versions/s",
                             r["versions"] / r["seconds"], f"{r['timing']}; {fmt_bytes(r['written'])} written",
                             samples=r["versions"]))
        size_small = index_size(idx)

        # 2. Queries at the small size, through the mount and the CLI.
        mnt, proc, _, _ = self.mount(store, idx, "builtin")
        self.wait_caught_up(mnt, proc, idx)
        lat, results, short = self.mount_latencies(mnt, self.queries)
        self.lat_rows = [("mount", small, lat, short)]
        cli, agree = self.cli_latencies(store, idx, "builtin", list(results)[:self.cli_queries], results)
        self.cli_rows = [(small, cli, agree)]
        self.bridge_check(mnt, f"builtin, {small:,} versions", bridges)
        self.unmount(mnt, proc, f"builtin, {small:,} versions", idx)

        # Grow to the large size: rounds of new contents for every file, one import each.
        t0 = time.perf_counter()
        for rnd in range(1, self.rounds):
            bridges += write_tree(src, self.files, rnd, seed=1)[1]
            run(self.cmd("import", store, src))
            log(f"  import round {rnd + 1}/{self.rounds} ({time.perf_counter() - t0:.0f} s)")
        log(f"store-builtin: {self.rounds} imports of {self.files:,} files ({time.perf_counter() - t0:.1f} s)")

        # The mount catches up from the small to the large size by itself; queries meanwhile.
        mnt, proc, mount_s, _ = self.mount(store, idx, "builtin")
        w0, cpu0 = proc_io(proc.pid)
        during = []

        def query_while_indexing():
            dt, _ = self.mount_query(mnt, self.qnames.next())
            during.append(dt)
            time.sleep(0.25)

        caught, saved, status = self.wait_caught_up(mnt, proc, idx, during=query_while_indexing)
        w1, cpu1 = proc_io(proc.pid)
        self.notes.append(f"mount of the {size_small[1]:,}-version index: .status first said '{self.first_state}'; "
                          f"queries answer (state ready) {self.ready_after:.2f} s after the mount appeared"
                          + ("" if self.first_state == "ready" else " (EAGAIN before)"))
        new = status["versions"] - size_small[1]
        written = fmt_bytes(w1 - w0) if w0 is not None and w1 is not None else "?"
        cpu = f"{cpu1 - cpu0:.0f} s" if cpu0 is not None and cpu1 is not None else "?"
        self.rows.append(Row(f"builtin, mount catching up {size_small[1]:,} -> {status['versions']:,} versions", "versions/s",
                             new / caught, f"{new:,} in {caught:.1f} s (saved at {saved:.1f} s); wrote {written}; CPU {cpu}",
                             samples=new,
                             note=f"from mounted ({mount_s:.2f} s after exec) to .status 'ready' and '(0 behind)'; "
                                  "saved: meta.json records the head; the mount saves the whole graph after 2,000 versions or a quarter of the index, and 30 s after new versions"))
        self.during = during
        lat, results, short = self.mount_latencies(mnt, self.queries)
        self.lat_rows.append(("mount", status["versions"], lat, short))
        cli, agree = self.cli_latencies(store, idx, "builtin", list(results)[:self.cli_queries], results)
        self.cli_rows.append((status["versions"], cli, agree))
        self.bridge_check(mnt, f"builtin, {status['versions']:,} versions", bridges)
        self.sizes = [("builtin", size_small), ("builtin", index_size(idx))]
        self.unmount(mnt, proc, f"builtin, {status['versions']:,} versions", idx)
        self.large = status["versions"]

        # Mounting the large index again, read-write: how soon the first query is answered, and
        # what keeping the index up to date writes when files change.
        mnt, proc, mount_s, _ = self.mount(store, idx, "builtin", rw=True)
        t0 = time.perf_counter()
        eagain, first_state = 0, None
        while True:
            if first_state is None:
                first_state = read_status(mnt).get("state")
            try:
                os.listdir(os.path.join(mnt, "@similar", self.qnames.next()))
                break
            except OSError as e:
                if e.errno != errno.EAGAIN or time.perf_counter() - t0 > 300:
                    raise BenchError(f"the first query after mounting: {e}")
                eagain += 1
                time.sleep(0.001)
        first = time.perf_counter() - t0
        self.first_answer = Row(f"first answer after mounting the {self.large:,}-version index", "s", first,
                                f"{eagain} EAGAIN before it; .status first: {first_state}",
                                note=f"mounted {mount_s:.2f} s after exec (read-write); then os.listdir of new query names "
                                     "until one answers (1 ms apart)")
        self.wait_caught_up(mnt, proc, idx)
        live = os.path.join(mnt, "bench-live")
        os.mkdir(live)
        time.sleep(3)
        w0, _ = proc_io(proc.pid)
        time.sleep(3)
        w_idle, _ = proc_io(proc.pid)
        changes = 10
        for i in range(changes):
            with open(os.path.join(live, "note.conf"), "w") as f:
                f.write(f"# live change {i}\nListenAddress 10.9.8.{i + 2}\n")
            time.sleep(1)
        self.wait_caught_up(mnt, proc, idx)
        time.sleep(1)
        w1, _ = proc_io(proc.pid)
        if None not in (w0, w_idle, w1):
            self.upkeep = Row(f"daemon writes per changed file, {self.large:,}-version index", "bytes/change",
                              (w1 - w_idle) / changes,
                              f"{fmt_bytes(w1 - w_idle)} for {changes} one-line writes 1 s apart; "
                              f"{fmt_bytes(w_idle - w0)} in 3 s idle; index {fmt_bytes(index_bytes(idx))}",
                              note="/proc/<daemon>/io write_bytes of the read-write mount (the store's own writes for "
                                   "these files are a few kB); every catch-up ends with a save of the whole graph")
        self.unmount(mnt, proc, f"builtin, {self.large:,} versions, mounted again read-write", idx)

    def phase_minilm(self):
        store, _, mean, bridges = self.make_store("store-minilm", self.minilm_files, seed=2)
        idx_m = os.path.join(self.work, "index-minilm")
        idx_b = os.path.join(self.work, "index-builtin-small")
        rb = self.reindex(store, idx_b, "builtin")
        rm = self.reindex(store, idx_m, "minilm")
        self.minilm_id = rm["embedder_id"]
        tokens = ""
        try:
            texts = []
            for i in range(self.minilm_files):
                rel, text = config_file(i, 0, 2)
                texts.append("/" + rel + "\n" + text)  # what the index embeds: the path, then the content
            counts = wordpiece_counts(texts, os.path.join(self.args.model_dir or DEFAULT_MODEL_DIR, "vocab.txt"))
            tokens = (f", ~{statistics.mean(counts):.0f} WordPiece tokens each on average "
                      f"({sum(c > 256 for c in counts)} over the 256 the embedder reads)")
        except OSError:
            pass
        self.minilm_rows = []
        self.minilm_rows.append(Row(f"builtin, layerfs reindex, {rb['versions']:,} versions (the minilm store)", "versions/s",
                                    rb["versions"] / rb["seconds"], rb["timing"], samples=rb["versions"]))
        self.minilm_rows.append(Row(f"minilm, layerfs reindex, {rm['versions']:,} versions", "versions/s",
                                    rm["versions"] / rm["seconds"],
                                    f"{rm['timing']}; CPU {rm['cpu']:.0f} s", samples=rm["versions"],
                                    note=f"a smaller store ({self.minilm_files:,} files): MiniLM embeds "
                                         f"~{rm['versions'] / rm['seconds']:.0f} of these {mean:.0f}-byte files per second"
                                         f"{tokens}"))
        self.sizes.append(("builtin", index_size(idx_b)))
        self.sizes.append(("minilm", index_size(idx_m)))
        mnt, proc, _, _ = self.mount(store, idx_m, "minilm")
        self.wait_caught_up(mnt, proc, idx_m)
        lat, results, short = self.mount_latencies(mnt, self.minilm_queries)
        self.minilm_lat = (rm["versions"], lat, short)
        cli, agree = self.cli_latencies(store, idx_m, "minilm", list(results)[:max(5, self.cli_queries // 2)], results)
        self.minilm_cli = (cli, agree)
        self.bridge_check(mnt, f"minilm, {rm['versions']:,} versions", bridges)
        self.unmount(mnt, proc, f"minilm, {rm['versions']:,} versions", idx_m)

    # -- the whole run --

    def machine(self):
        info = {"cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()}
        try:
            with open("/proc/cpuinfo") as f:
                info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
            with open("/proc/meminfo") as f:
                info["ram_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 2)
        except (OSError, ValueError, IndexError):
            pass
        p = run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.args.dir], check=False)
        info["dir_fs"] = p.stdout.decode().strip() or "?"
        info["load_start"] = os.getloadavg()
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        p = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], check=False)
        info["commit"] = p.stdout.decode().strip() if p.returncode == 0 else None
        info["binary"] = self.binary
        return info

    def main(self):
        info = self.machine()
        mode = "quick" if self.quick else "full"
        log(f"similar-bench ({mode}): cores {info['cores']}, RAM {info.get('ram_gib')} GiB; --dir {self.args.dir} "
            f"({info['dir_fs']}); load {info['load_start'][0]:.2f}")
        started = time.perf_counter()
        work = tempfile.mkdtemp(prefix=PREFIX, dir=self.args.dir)
        self.teardown.work = work
        self.teardown.keep = self.args.keep
        self.work = work
        with open(os.path.join(work, "owner.pid"), "w") as f:
            f.write(f"{os.getpid()}\n")
        self.sizes = []
        self.text_bytes = None
        try:
            log("-- builtin")
            t0 = time.perf_counter()
            self.phase_builtin()
            log(f"   ({time.perf_counter() - t0:.1f} s)")
        except BenchError as e:
            self.failures += 1
            log(f"FAILED: builtin: {e}")
            self.builtin_error = str(e)
        minilm_skip = None
        model = self.args.model_dir or DEFAULT_MODEL_DIR
        if self.minilm_files == 0:
            minilm_skip = "skipped (--minilm-files 0)"
        elif not os.path.exists(os.path.join(model, "model.safetensors")):
            minilm_skip = f"skipped: no MiniLM model in {model} (scripts/install-model.sh installs it)"
        self.minilm_skip = minilm_skip
        if not minilm_skip:
            try:
                log("-- minilm")
                t0 = time.perf_counter()
                self.phase_minilm()
                log(f"   ({time.perf_counter() - t0:.1f} s)")
            except BenchError as e:
                self.failures += 1
                log(f"FAILED: minilm: {e}")
                self.minilm_error = str(e)
        info["load_end"] = os.getloadavg()
        info["seconds"] = round(time.perf_counter() - started, 1)
        self.build_rows()
        return info, mode

    def build_rows(self):
        rows = []
        target_size = 100_000
        b_err = getattr(self, "builtin_error", None)
        m_err = getattr(self, "minilm_error", None)

        def fail(name, err, skip=None):
            return Row(name, None, status="SKIPPED" if skip else "FAILED", note=skip or err)

        rows.append(Row("1. indexing throughput", None, status="SECTION"))
        rows += [r for r in self.rows if r.unit == "versions/s"]
        if b_err and not any(r.unit == "versions/s" for r in self.rows):
            rows.append(fail("builtin, layerfs reindex", b_err))
        if hasattr(self, "minilm_rows"):
            rows += self.minilm_rows
        else:
            rows.append(fail("minilm, layerfs reindex", m_err, self.minilm_skip))

        rows.append(Row("2. query latency, builtin (k 10, every query a new name)", None, status="SECTION"))
        if hasattr(self, "lat_rows") and len(self.lat_rows) == 2:
            (_, n_small, lat_small, short_small), (_, n_large, lat_large, short_large) = self.lat_rows
            rows += latency_rows(f"mount, {n_small:,} versions", lat_small,
                                 note=f"os.listdir(MNT/@similar/<query>#10); {short_small} answers not of 10 entries")
            rows += latency_rows(f"mount while catching up to {n_large:,}", self.during,
                                 note="one new query every 0.25 s while the daemon indexes")
            big = n_large >= target_size
            rows += latency_rows(f"mount, {n_large:,} versions", lat_large, p50_target=0.020 if big else None,
                                 note=f"{short_large} answers not of 10 entries" +
                                      ("" if big else "; the 20 ms target is for 100,000 versions (a full run)"))
            if hasattr(self, "first_answer"):
                rows.append(self.first_answer)
            for n, lat, agree in self.cli_rows:
                rows += latency_rows(f"layerfs similar (CLI), {n:,} versions", lat,
                                     note=f"exec to exit, index loaded from disk by each process; "
                                          f"same top 10 as the mount: {agree} of {len(lat)}")
        else:
            rows.append(fail("mount / CLI query latency", b_err))

        rows.append(Row("3. index size (hnsw.bin + meta.json) per version", None, status="SECTION"))
        ids = {"builtin": getattr(self, "builtin_id", "builtin"), "minilm": getattr(self, "minilm_id", "minilm")}
        for emb, (size, count, dim) in self.sizes:
            label = ids[emb] if ids[emb].endswith(f"-d{dim}") else f"{ids[emb]} (d{dim})"
            rows.append(Row(f"{label}, {count:,} versions", "B/version", size / count, fmt_bytes(size),
                            samples=count))
        if not any(e == "minilm" for e, _ in self.sizes):
            rows.append(fail("minilm index size", m_err, self.minilm_skip))

        rows.append(Row("4. query latency, minilm (k 10)", None, status="SECTION"))
        if hasattr(self, "minilm_lat"):
            n, lat, short = self.minilm_lat
            rows += latency_rows(f"mount, {n:,} versions", lat, note=f"{short} answers not of 10 entries")
            cli, agree = self.minilm_cli
            rows += latency_rows(f"layerfs similar (CLI), {n:,} versions", cli,
                                 note=f"exec to exit, model and index loaded by each process; same top 10 as the mount: "
                                      f"{agree} of {len(cli)}")
        else:
            rows.append(fail("minilm query latency", m_err, self.minilm_skip))
        if hasattr(self, "upkeep"):
            rows.append(Row("5. keeping the index up to date (read-write mount)", None, status="SECTION"))
            rows.append(self.upkeep)
        self.table = rows


def default_binary():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for rel in (".build-sb/release/layerfs", ".build-bench-rel/release/layerfs", ".build/release/layerfs"):
        path = os.path.join(repo, rel)
        if os.access(path, os.X_OK):
            return path
    return shutil.which("layerfs") or "layerfs"


def print_report(bench, info, mode, args):
    rows = bench.table
    print(f"layerfs similar-bench ({mode}; p50 = median, p99 = nearest rank)")
    print(f"  {info.get('cpu', '?')}, {info['cores']} cores, RAM {info.get('ram_gib')} GiB, kernel {info['kernel']}; "
          f"--dir {args.dir} ({info['dir_fs']})")
    print(f"  layerfs {info['binary']} (commit {info['commit']}); mounts -f -o ro,index_dir=... "
          "(section 5: read-write)")
    print(f"  builtin: {bench.files:,} generated config files, imported {bench.rounds} times with new contents"
          f"{f' ({bench.text_bytes:.0f} bytes per file on average)' if bench.text_bytes else ''}; "
          f"minilm: {bench.minilm_files:,} files")
    la, lb = info["load_start"], info["load_end"]
    print(f"  load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} at the start, {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} at the end")
    print()
    header = ["figure", "value", "detail", "target", "result"]
    table = [header] + [["  " + r.cells()[0]] + r.cells()[1:] for r in rows if r.status != "SECTION"]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def fmt(line):
        return "  ".join(c.rjust(widths[i]) if i == 1 else c.ljust(widths[i]) for i, c in enumerate(line)).rstrip()

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.status == "SECTION":
            print(r.name)
            continue
        cells = r.cells()
        print(fmt(["  " + cells[0]] + cells[1:]))
        if r.status in ("SKIPPED", "FAILED") and r.note:
            print(f"      {r.note}")
    print()
    for r in rows:
        if r.note and r.status not in ("SKIPPED", "FAILED", "SECTION"):
            print(f"  {r.name}: {r.note}")
    for note in bench.notes + bench.teardown.report:
        print(f"  {note}")
    print(f"  total {info['seconds']:.0f} s")


def main():
    ap = argparse.ArgumentParser(description="layerfs similarity-index benchmark (needs root for the mounts).")
    ap.add_argument("--quick", action="store_true",
                    help="short run: 2,000 files x 5 imports (2k and 10k versions), 300 minilm versions")
    ap.add_argument("--binary", default=None, help="the layerfs binary (default: the repository's release build)")
    ap.add_argument("--dir", default="/var/tmp", help="where the stores and indexes go (default /var/tmp)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    ap.add_argument("--files", type=int, default=None, help="builtin: files per import (default 10,000; --quick 2,000)")
    ap.add_argument("--rounds", type=int, default=None, help="builtin: imports of new contents (default 10; --quick 5)")
    ap.add_argument("--minilm-files", type=int, default=None, help="minilm: files (default 1,500; --quick 300; 0 skips)")
    ap.add_argument("--queries", type=int, default=None, help="builtin: queries per size through the mount (default 300; --quick 200)")
    ap.add_argument("--model-dir", default=None, help=f"the MiniLM model (default {DEFAULT_MODEL_DIR})")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (stores, indexes, mount logs)")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary) if args.binary else default_binary()
    args.dir = os.path.abspath(args.dir)

    if os.geteuid() != 0:
        log("similar-bench: must run as root (FUSE mounts)")
        return 2
    missing = [t for t in ("fusermount3", "findmnt") if not shutil.which(t)]
    if not os.access(args.binary, os.X_OK):
        missing.append(args.binary)
    if not os.path.exists("/dev/fuse"):
        missing.append("/dev/fuse")
    if missing:
        log(f"similar-bench: missing: {', '.join(missing)}")
        return 2
    if (args.files is not None and args.files < 100) or (args.rounds is not None and args.rounds < 2):
        log("similar-bench: --files must be at least 100 and --rounds at least 2")
        return 2

    clean_stale(args.dir)
    bench = Bench(args)
    atexit.register(bench.teardown)
    for s in HANDLED_SIGNALS:
        signal.signal(s, on_signal)
    status = 0
    info, mode = None, None
    try:
        info, mode = bench.main()
    except Interrupted as e:
        log(f"similar-bench: interrupted by signal {e.signum}; tearing down")
        status = 128 + e.signum
    except BenchError as e:
        log(f"similar-bench: {e}")
        status = 1
    finally:
        bench.teardown()
        for line in bench.teardown.report:
            log(line)
    if status:
        return status
    if args.json:
        rows, section = [], None
        for r in bench.table:
            if r.status == "SECTION":
                section = r.name
            else:
                rows.append({"section": section, **r.as_json()})
        json.dump({"mode": mode, "machine": info, "rows": rows, "notes": bench.notes,
                   "teardown": bench.teardown.report}, sys.stdout, indent=2)
        print()
    else:
        print_report(bench, info, mode, args)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
