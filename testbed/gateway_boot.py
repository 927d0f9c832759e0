"""Boots the gateway's user data (stacks/gateway.yaml) in the test bed, as an EC2 instance would run
it, and reports what happened as JSON. Run as root with the test bed's venv (boto3):

    .venv/bin/python testbed/gateway_boot.py SPEC.json     (tests/tests/gateway_boot.rs writes SPEC)

The instance is a root filesystem built from Debian's packages (testbed/gateway_rootfs.sh), mounted
afresh for each boot (an overlay: a new instance gets a new root volume), entered with chroot inside
its own mount, PID and network namespaces. Its network has only loopback, where it finds:

* the emulator (testbed/emulator.py) at the address AWS_ENDPOINT_URL names, bridged from this
  machine's loopback through a Unix socket;
* an instance metadata service at 169.254.169.254 that requires IMDSv2 session tokens (the launch
  template's HttpTokens: required) and hands out the instance role's keys;
* a stand-in for Telegram's Bot API (Telegram cannot be reached from here; the test points OpenClaw
  at it after the bootstrap and records what OpenClaw registers).

Nothing else is reachable: npm and pip install from caches this script fills beforehand on the
machine's own network (target/gateway-boot/cache). The EBS volume is a loop device over an image
file: the device node `/dev/sdf` appears only once the instance has attached the volume in the
emulator (and a few seconds later, as on a Nitro instance), and a boot can be told that the volume
is still held by an old instance that lets go of it later (a stack update replacing the instance).
Stand-ins (testbed/instance/): dnf, cfn-signal, the CloudWatch agent's control script, systemctl
(no systemd runs as init in a chroot) and swapon (swap is not namespaced: the real one would give this
machine's kernel the instance's swap file); each records what it was asked under /var/log/testbed.
With `memory_kib` in the spec, the instance's /proc/meminfo reports that much memory (its type's).
"""

import fcntl
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
TELEGRAM_PORT = 8081
IMDS_PORT = 8169


def log(*args):
    print("gateway_boot:", *args, file=sys.stderr, flush=True)


def run(argv, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(argv, **kwargs)


# --- On this machine: caches, the volume, the emulator's side of things --------------------------


def locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def warm_caches(spec):
    """npm's and pip's caches, filled on this machine's network, for the offline instance."""
    cache, rootfs, version = spec["cache"], spec["rootfs"], spec["openclaw_version"]
    with locked(os.path.join(cache, "warm.lock")):
        stamp = os.path.join(cache, "npm", f".warm-openclaw-{version}")
        if not os.path.exists(stamp):
            log(f"filling the npm cache with openclaw@{version} and its dependencies")
            scratch = os.path.join(cache, "npm-scratch")
            shutil.rmtree(scratch, ignore_errors=True)
            node = os.path.join(rootfs, "usr/lib/nodejs24/bin/node")
            npm = os.path.join(rootfs, "usr/lib/nodejs24/lib/node_modules/npm/bin/npm-cli.js")
            run([node, npm, "install", "--global", "--prefix", scratch, "--cache", os.path.join(cache, "npm"),
                 "--no-fund", "--no-audit", "--loglevel=error", f"openclaw@{version}"],
                env={**os.environ, "PATH": f"{os.path.dirname(node)}:{os.environ['PATH']}"})
            shutil.rmtree(scratch)
            open(stamp, "w").close()
        certbot = spec["certbot_version"]
        wheels = os.path.join(cache, "wheels-certbot")
        stamp = os.path.join(wheels, f".warm-certbot-{certbot}")
        if not os.path.exists(stamp):
            log(f"filling the pip cache with certbot=={certbot} and its dependencies")
            run(["python3", "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--cache-dir", os.path.join(cache, "pip"), "-d", wheels, f"certbot=={certbot}", "pip", "setuptools",
                 "wheel"])
            open(stamp, "w").close()


def make_dev(dev, loop):
    """The instance's /dev: a directory bound in, so /dev/sdf can be made to appear from outside."""
    os.makedirs(dev)
    for name, major, minor in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)]:
        os.mknod(os.path.join(dev, name), 0o20666, os.makedev(major, minor))
    st = os.stat(loop)
    os.mknod(os.path.join(dev, os.path.basename(loop)), 0o60660, st.st_rdev)
    for d in ("shm", "pts"):
        os.makedirs(os.path.join(dev, d))
    # Process substitution (the user data's `exec > >(tee ...)`) needs /dev/fd.
    for name, target in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")]:
        os.symlink(target, os.path.join(dev, name))


def ec2_client(spec):
    import boto3

    e = spec["emulator"]
    return boto3.client("ec2", endpoint_url=e["url"], region_name=e["region"],
                        aws_access_key_id=e["admin"]["access_key_id"],
                        aws_secret_access_key=e["admin"]["secret_access_key"])


def volume_lookups(spec):
    """How many DescribeVolumes calls the instance's role has made (the emulator's decision log)."""
    import urllib.request

    with urllib.request.urlopen(spec["emulator"]["url"] + "/_testbed/calls") as r:
        calls = json.load(r)
    key = spec["instance"]["keys"]["access_key_id"]
    return sum(1 for c in calls if c.get("access_key_id") == key and c.get("action") == "ec2:DescribeVolumes")


def watch_volume(spec, dev, loop, timeline, stop):
    """EBS as the instance sees it: the old holder lets go when told to (`seconds` after this boot
    started, or after the instance first looked the volume up, with `after_waiting`), and the device
    node appears a little after the volume is attached to this instance."""
    ec2 = ec2_client(spec)
    start = time.time()
    release = spec.get("release_after")
    released = release is None
    waiting_since = None if release and release.get("after_waiting") else start
    lookups_before = volume_lookups(spec) if waiting_since is None else 0
    while not stop.is_set():
        if waiting_since is None and volume_lookups(spec) > lookups_before:
            waiting_since = time.time()
            timeline.append({"t": round(waiting_since - start, 1), "event": "the instance looks the volume up"})
        if not released and waiting_since is not None and time.time() - waiting_since >= release["seconds"]:
            ec2.detach_volume(VolumeId=spec["volume_id"], InstanceId=release["from_instance"], Force=True)
            timeline.append({"t": round(time.time() - start, 1), "event": f"released by {release['from_instance']}"})
            released = True
        v = ec2.describe_volumes(VolumeIds=[spec["volume_id"]])["Volumes"][0]
        mine = [a for a in v.get("Attachments", []) if a["InstanceId"] == spec["instance"]["id"]]
        if mine:
            timeline.append({"t": round(time.time() - start, 1), "event": f"attached at {mine[0]['Device']}"})
            time.sleep(spec.get("device_delay", 3))
            os.symlink(os.path.basename(loop), os.path.join(dev, os.path.basename(spec["device"])))
            timeline.append({"t": round(time.time() - start, 1), "event": f"{spec['device']} appeared"})
            return
        time.sleep(1)


def bridge_unix_to_tcp(path, port, stop):
    """The emulator's side of the bridge: each connection on the Unix socket goes to 127.0.0.1:port."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(64)
    server.settimeout(0.5)
    while not stop.is_set():
        try:
            client, _ = server.accept()
        except socket.timeout:
            continue
        upstream = socket.create_connection(("127.0.0.1", port))
        pipe(client, upstream)
    server.close()


def pipe(a, b):
    def copy(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    threading.Thread(target=copy, args=(a, b), daemon=True).start()
    threading.Thread(target=copy, args=(b, a), daemon=True).start()


def host_tools():
    """What this machine needs beyond the image: iptables (Debian's package), for the metadata address."""
    # testbed/setup.sh installs it before the tests; this is for a test run on its own. Both boot
    # tests may get here at once: one installs under a lock, the other waits for it (and apt waits
    # for dpkg's own lock rather than failing on it).
    with locked("/var/lock/openclaw-testbed-host-tools.lock"):
        if shutil.which("iptables") is None:
            log("installing iptables (Debian's package)")
            apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-y", "-qq"]
            if subprocess.run(apt + ["install", "iptables"]).returncode != 0:
                run(apt + ["update"])
                run(apt + ["install", "iptables"])


def outside(spec_path):
    spec = json.load(open(spec_path))
    work = spec["work"]
    host_tools()
    warm_caches(spec)
    loop = run(["losetup", "--find", "--show", spec["volume_image"]], capture_output=True, text=True).stdout.strip()
    try:
        dev = os.path.join(work, "dev")
        make_dev(dev, loop)
        stop = threading.Event()
        timeline = []
        port = urllib.parse.urlparse(spec["emulator"]["url"]).port
        sock = os.path.join(work, "emulator.sock")
        threading.Thread(target=bridge_unix_to_tcp, args=(sock, port, stop), daemon=True).start()
        watcher = threading.Thread(target=watch_volume, args=(spec, dev, loop, timeline, stop), daemon=True)
        watcher.start()
        inner = subprocess.run(
            ["unshare", "--mount", "--net", "--pid", "--fork", "--kill-child", "--propagation", "private",
             sys.executable, os.path.abspath(__file__), "--inside", spec_path, loop],
            timeout=spec.get("timeout", 1200))
        stop.set()
        result_path = os.path.join(work, "result.json")
        if not os.path.exists(result_path):
            sys.exit(f"gateway_boot: the instance left no result (exit {inner.returncode})")
        result = json.load(open(result_path))
        result["volume_timeline"] = timeline
        result["loop_device"] = loop
        print(json.dumps(result))
    finally:
        subprocess.run(["losetup", "--detach", loop])


# --- Inside the instance's namespaces ------------------------------------------------------------


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def imds_handler(spec, records):
    tokens = set()
    instance = spec["instance"]

    class Imds(Quiet):
        def do_PUT(self):
            ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            records.append({"method": "PUT", "path": self.path, "status": 200 if ok else 400})
            if not ok:
                return self.reply(400, "missing X-aws-ec2-metadata-token-ttl-seconds")
            token = os.urandom(16).hex()
            tokens.add(token)
            self.reply(200, token)

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") not in tokens:
                records.append({"method": "GET", "path": self.path, "status": 401})
                return self.reply(401, "IMDSv2 only: PUT /latest/api/token first")
            role = instance["role"]
            now = datetime.now(timezone.utc)
            answers = {
                "/latest/meta-data/instance-id": instance["id"],
                "/latest/meta-data/placement/availability-zone": instance["az"],
                "/latest/meta-data/placement/region": spec["emulator"]["region"],
                "/latest/meta-data/iam/security-credentials/": role,
                f"/latest/meta-data/iam/security-credentials/{role}": json.dumps({
                    "Code": "Success", "Type": "AWS-HMAC", "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "AccessKeyId": instance["keys"]["access_key_id"],
                    "SecretAccessKey": instance["keys"]["secret_access_key"], "Token": "",
                    "Expiration": (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")}),
                "/latest/dynamic/instance-identity/document": json.dumps({
                    "instanceId": instance["id"], "availabilityZone": instance["az"],
                    "region": spec["emulator"]["region"]}),
            }
            answer = answers.get(self.path)
            records.append({"method": "GET", "path": self.path, "status": 200 if answer is not None else 404})
            if answer is None:
                return self.reply(404, "not found")
            self.reply(200, answer)

    return Imds


def telegram_handler(records):
    class Telegram(Quiet):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            method = self.path.rsplit("/", 1)[-1].split("?")[0]
            try:
                params = json.loads(raw) if raw else {}
            except ValueError:
                params = {"raw": raw.decode(errors="replace")}
            records.append({"method": method, "params": params})
            results = {
                "getMe": {"id": 123456, "is_bot": True, "first_name": "testbed", "username": "testbed_bot",
                          "can_join_groups": True, "can_read_all_group_messages": False,
                          "supports_inline_queries": False},
                "getWebhookInfo": {"url": "", "has_custom_certificate": False, "pending_update_count": 0},
                "getUpdates": [],
            }
            self.reply(200, json.dumps({"ok": True, "result": results.get(method, True)}), "application/json")

        do_GET = answer
        do_POST = answer

    return Telegram


def serve(address, handler):
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(address, handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def bridge_tcp_to_unix(port, path):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def accept():
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(path)
            pipe(client, upstream)

    threading.Thread(target=accept, daemon=True).start()


def sh(root, command, user=None, env=None, timeout=120):
    """A command in the instance (as root, or as `user` through runuser), its exit code and output."""
    argv = ["chroot", root]
    if user:
        argv += ["runuser", "-u", user, "--"]
    argv += ["env", "-i", *[f"{k}={v}" for k, v in (env or {}).items()],
             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "bash", "-c", command]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return {"code": p.returncode, "out": p.stdout[-6000:], "err": p.stderr[-6000:]}
    except subprocess.TimeoutExpired as e:
        return {"code": None, "out": str(e.stdout)[-3000:], "err": f"timed out after {timeout} s"}


def install_instance_files(root, spec, machine_env):
    def put(src, dst, mode=0o755):
        dst = os.path.join(root, dst.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        os.chmod(dst, mode)

    inst = os.path.join(HERE, "instance")
    put(os.path.join(inst, "dnf"), "/usr/bin/dnf")
    put(os.path.join(inst, "cfn-signal"), "/opt/aws/bin/cfn-signal")
    put(os.path.join(inst, "amazon-cloudwatch-agent-ctl"),
        "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl")
    put(os.path.join(inst, "systemctl"), "/usr/local/sbin/systemctl")
    put(os.path.join(inst, "swapon"), "/usr/local/sbin/swapon")
    put(os.path.join(HERE, "al2023-packages.txt"), "/usr/share/testbed/al2023-packages.txt", 0o644)
    put(spec["user_data"], "/var/lib/cloud/instance/user-data.txt", 0o700)
    for d in ("var/log/testbed", "var/lib/testbed", "etc/testbed"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    with open(os.path.join(root, "var/lib/testbed/cfn-signal-failures"), "w") as f:
        f.write(str(spec.get("cfn_signal_failures", 0)))
    with open(os.path.join(root, "etc/testbed/environment"), "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in machine_env.items())
    with open(os.path.join(root, "etc/hostname"), "w") as f:
        f.write(spec["instance"]["id"] + "\n")


def mount_instance(spec, loop):
    work = spec["work"]
    root = os.path.join(work, "root")
    for d in ("upper", "overlay-work", "root"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={spec['rootfs']},upperdir={work}/upper,workdir={work}/overlay-work", root])
    run(["mount", "-t", "proc", "proc", f"{root}/proc"])
    if spec.get("memory_kib"):
        # The instance type's memory as its kernel reports it (a t3.micro's, say), over this machine's.
        meminfo = os.path.join(work, "meminfo")
        with open("/proc/meminfo") as real, open(meminfo, "w") as fake:
            for line in real:
                fake.write(f"MemTotal:       {spec['memory_kib']} kB\n" if line.startswith("MemTotal:") else line)
        run(["mount", "--bind", meminfo, f"{root}/proc/meminfo"])
    run(["mount", "--bind", f"{work}/dev", f"{root}/dev"])
    run(["mount", "-t", "tmpfs", "tmpfs", f"{root}/dev/shm"])
    run(["mount", "-t", "tmpfs", "tmpfs", f"{root}/run"])
    run(["mount", "-t", "tmpfs", "tmpfs", f"{root}/tmp"])
    # npm's global installs (OpenClaw: some 650 MB in 30,000 files) in memory: gone with the boot's
    # namespace instead of costing minutes of deletion on a loaded machine.
    os.makedirs(f"{root}/usr/local/lib/node_modules", exist_ok=True)
    run(["mount", "-t", "tmpfs", "tmpfs", f"{root}/usr/local/lib/node_modules"])
    for src, dst in ((f"{spec['cache']}/npm", "var/cache/testbed/npm"),
                     (f"{spec['cache']}/wheels-certbot", "var/cache/testbed/wheels")):
        os.makedirs(os.path.join(root, dst), exist_ok=True)
        run(["mount", "--bind", src, os.path.join(root, dst)])
    return root


def wait_for(check, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(1)
    return False


def listening(port):
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    return sorted({line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{port}")})


def request(method, url, headers=None, body=None):
    """One request, redirects not followed (nginx's redirect to HTTPS is what is checked)."""
    import http.client

    u = urllib.parse.urlparse(url)
    try:
        c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
        c.request(method, u.path or "/", body=body, headers=headers or {})
        r = c.getresponse()
        return {"status": r.status, "headers": {k.lower(): v for k, v in r.getheaders()},
                "body": r.read().decode(errors="replace")[:500]}
    except OSError as e:
        return {"status": None, "error": repr(e)}


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def inside(spec_path, loop):
    spec = json.load(open(spec_path))
    run(["ip", "link", "set", "lo", "up"])
    run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"])
    # The metadata service answers on 169.254.169.254:80 without taking the instance's own port 80
    # (nginx listens on 0.0.0.0:80 in the budget tier): this namespace's NAT sends it elsewhere.
    run(["iptables", "-t", "nat", "-A", "OUTPUT", "-d", "169.254.169.254", "-p", "tcp", "--dport", "80",
         "-j", "DNAT", "--to-destination", f"169.254.169.254:{IMDS_PORT}"])
    port = urllib.parse.urlparse(spec["emulator"]["url"]).port
    bridge_tcp_to_unix(port, os.path.join(spec["work"], "emulator.sock"))
    imds_records, telegram_records = [], []
    serve(("169.254.169.254", IMDS_PORT), imds_handler(spec, imds_records))
    serve(("127.0.0.1", TELEGRAM_PORT), telegram_handler(telegram_records))

    root = mount_instance(spec, loop)
    # The machine's environment under the test bed: the emulator's endpoint (the SDKs' standard
    # variable) and npm and pip pointed at their caches, the network beyond loopback being absent.
    machine_env = {
        "AWS_ENDPOINT_URL": spec["emulator"]["url"],
        "npm_config_cache": "/var/cache/testbed/npm",
        "npm_config_offline": "true",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": "/var/cache/testbed/wheels",
    }
    install_instance_files(root, spec, machine_env)

    result = {"tier": spec["tier"]}
    started = time.time()
    boot = sh(root, "exec bash /var/lib/cloud/instance/user-data.txt",
              env={**machine_env, "HOME": "/root", "LANG": "C.UTF-8"}, timeout=spec.get("boot_timeout", 900))
    result["user_data"] = {"code": boot["code"], "seconds": round(time.time() - started, 1),
                           "out": boot["out"], "err": boot["err"]}
    state_dir = spec["state_dir"]
    as_openclaw = {"HOME": "/home/openclaw", "OPENCLAW_STATE_DIR": state_dir}

    if boot["code"] == 0:
        # Telegram's API is not reachable from here: OpenClaw talks to the test bed's stand-in instead,
        # a setting added on top of the stack's own (the gateway applies it without a restart).
        result["api_root"] = sh(root, f"openclaw config set channels.telegram.apiRoot http://127.0.0.1:{TELEGRAM_PORT}",
                                user="openclaw", env=as_openclaw)
        result["webhook_listening"] = wait_for(lambda: listening(8787), 120)
        result["listeners"] = {"18789": listening(18789), "8787": listening(8787), "80": listening(80)}
        result["healthz"] = request("GET", "http://127.0.0.1:18789/healthz")
        env_file = os.path.join(root, "run/openclaw/env")
        secret = ""
        if os.path.exists(env_file):
            for line in open(env_file):
                if line.startswith("TELEGRAM_WEBHOOK_SECRET="):
                    secret = line.strip().split("=", 1)[1]
        result["webhook_secret"] = secret
        update = json.dumps({"update_id": 1, "message": {"message_id": 1, "date": int(time.time()),
                                                         "chat": {"id": 42, "type": "private"},
                                                         "from": {"id": 42, "is_bot": False, "first_name": "T"},
                                                         "text": "hello"}}).encode()
        headers = {"Content-Type": "application/json"}
        result["webhook_with_secret"] = request("POST", "http://127.0.0.1:8787/telegram-webhook",
                                             {**headers, "X-Telegram-Bot-Api-Secret-Token": secret}, update)
        result["webhook_without_secret"] = request("POST", "http://127.0.0.1:8787/telegram-webhook",
                                                {**headers, "X-Telegram-Bot-Api-Secret-Token": "wrong"}, update)
        if spec["tier"] == "budget":
            result["nginx_redirect"] = request("GET", "http://127.0.0.1/telegram-webhook", {"Host": spec["domain"]})
            result["nginx_test"] = sh(root, "nginx -t")
        result["allowed_origins"] = sh(root, "openclaw config get gateway.controlUi.allowedOrigins --json",
                                       user="openclaw", env=as_openclaw)
        config_path = os.path.join(root, state_dir.lstrip("/"), "openclaw.json")
        result["config_file"] = open(config_path).read() if os.path.exists(config_path) else None
        units = "/etc/systemd/system/openclaw-gateway.service /etc/systemd/system/openclaw-data-volume.service"
        if spec["tier"] == "budget":
            units += " /etc/systemd/system/openclaw-tls.service /etc/systemd/system/openclaw-tls.timer"
        result["systemd_analyze_verify"] = sh(root, f"systemd-analyze verify {units}")
        # The volume is mounted one level above the state directory (its parent).
        data_dir = os.path.dirname(state_dir)
        result["state_dir"] = sh(root, f"stat -c '%U:%G %a' {state_dir}; findmnt -no FSTYPE,SOURCE {data_dir}; "
                                       f"blkid -s UUID -o value $(findmnt -no SOURCE {data_dir}); "
                                       f"blkid -s LABEL -o value $(findmnt -no SOURCE {data_dir}); cat /etc/fstab")
        result["data_dir"] = sh(root, f"stat -c '%U:%G %a' {data_dir}; "
                                      f"if mountpoint -q {state_dir}; then echo 'the state directory is a mount point'; "
                                      f"else echo 'the state directory is not a mount point'; fi; "
                                      f"[ \"$(stat -c %d {state_dir})\" = \"$(stat -c %d {data_dir})\" ] "
                                      f"&& [ \"$(findmnt -no SOURCE {data_dir})\" = \"$(findmnt -no SOURCE -T {state_dir})\" ] "
                                      f"&& echo 'on the volume' || echo 'not on the volume'; "
                                      f"readlink /home/openclaw/.openclaw")
        marker = f"{state_dir}/testbed-marker"
        result["marker_before"] = sh(root, f"cat {marker} 2>/dev/null || true")["out"]
        sh(root, f"echo written-by-{spec['instance']['id']} > {marker}", user="openclaw", env=as_openclaw)
        result["gateway_version"] = sh(root, "openclaw --version")["out"].strip()
        result["node_version"] = sh(root, "node --version")["out"].strip()
        result["gateway_log"] = sh(root, "tail -c 4000 /var/log/testbed/openclaw-gateway.service.log")["out"]
    result["bootstrap_log"] = sh(root, "tail -c 6000 /var/log/openclaw-bootstrap.log")["out"]
    result["data_volume_log"] = sh(root, "cat /var/log/testbed/openclaw-data-volume.service.log")["out"]
    result["dnf"] = read_jsonl(os.path.join(root, "var/log/testbed/dnf.jsonl"))
    result["cfn_signal"] = read_jsonl(os.path.join(root, "var/log/testbed/cfn-signal.jsonl"))
    result["systemctl"] = read_jsonl(os.path.join(root, "var/log/testbed/systemctl.jsonl"))
    result["cloudwatch_agent"] = read_jsonl(os.path.join(root, "var/log/testbed/cloudwatch-agent.jsonl"))
    result["swapon"] = read_jsonl(os.path.join(root, "var/log/testbed/swapon.jsonl"))
    result["fstab"] = open(os.path.join(root, "etc/fstab")).read()
    result["imds"] = imds_records
    result["telegram"] = telegram_records
    with open(os.path.join(spec["work"], "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if sys.argv[1] == "--inside":
        inside(sys.argv[2], sys.argv[3])
    else:
        # Standard output carries the report alone: what the tools this runs print (npm filling its
        # cache on a cold machine says "added 330 packages") goes to standard error.
        report = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        sys.stdout = report
        outside(sys.argv[1])
        report.flush()
