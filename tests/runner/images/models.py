"""Test models for the hostile-image suite: one behaviour per image, chosen by the image's CMD.

Runs inside the sandbox (python3 from the csawm-base/python image). Each behaviour records what it
observed into /output so the test can assert on it; none of them may touch anything but loopback,
the documentation address 192.0.2.1 and a name under the reserved top-level domain ``.invalid``
(RFC 6761: never delegated), so not even a sandbox that leaked could reach anybody's server.
"""

import ctypes
import json
import os
import platform
import socket
import sys
import time

OUT = os.environ.get("CSAWM_OUTPUT_DIR", "/output")
UNRESOLVABLE_HOST = "csawm-network-test.invalid"
PR_GET_NO_NEW_PRIVS = 39
IN = os.environ.get("CSAWM_INPUT_DIR", "/input")


def manifest():
    with open(os.path.join(IN, "manifest.csv")) as fh:
        rows = [line.strip() for line in fh if line.strip()]
    assert rows[0] == "Filename", rows[0]
    return rows[1:]


def write_predictions():
    names = manifest()
    with open(os.path.join(OUT, "predictions.csv"), "w") as fh:
        fh.write("Filename,Final_score\n")
        for i, name in enumerate(names):
            size = os.path.getsize(os.path.join(IN, "images", name))
            fh.write(f"{name},{(size % 97) / 10 + i * 0.01:.4f}\n")


def record(name, data):
    with open(os.path.join(OUT, name), "w") as fh:
        json.dump(data, fh)


def err(exc):
    return exc.errno if isinstance(exc, OSError) and exc.errno else type(exc).__name__


def good():
    print("well-behaved model: predicting", len(manifest()), "images")
    record("identity.json", {"uid": os.getuid(), "gid": os.getgid(), "env": dict(os.environ)})
    write_predictions()


def sleeper():
    print("sleeping forever", flush=True)
    while True:
        time.sleep(3600)


def hog():
    chunks = []
    for _ in range(4096):
        chunks.append(bytearray(16 * 1024 * 1024))  # zero-filled: every page touched
    print("allocated", len(chunks) * 16, "MiB without being stopped")


def forkbomb():
    children, failure = 0, None
    for _ in range(10_000):
        try:
            pid = os.fork()
        except OSError as exc:
            failure = exc.errno
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
    record("fork.json", {"children": children, "errno": failure})
    write_predictions()
    os._exit(0)  # the init process reaps the sleeping children when the container stops


def exit3():
    print("line before the failure")
    print("fatal: the model gave up", file=sys.stderr, flush=True)
    sys.exit(3)


def network(port):
    results = {}
    for label, addr in (("host_loopback", ("127.0.0.1", int(port))), ("test_net", ("192.0.2.1", 80))):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(addr)
            results[label] = "connected"
        except OSError as exc:
            results[label] = err(exc)
        finally:
            s.close()
    try:
        socket.getaddrinfo(UNRESOLVABLE_HOST, 80)
        results["dns"] = "resolved"
    except OSError as exc:
        results["dns"] = err(exc) if not isinstance(exc, socket.gaierror) else f"gaierror {exc.errno}"
    results["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    record("net.json", results)
    write_predictions()


def escape():
    results = {}
    for path in (
        "/escape.txt",
        "/etc/escape.txt",
        "/input/escape.txt",
        "/input/images/escape.txt",
        "/usr/lib/escape.txt",
        "/var/tmp/escape.txt",
    ):
        try:
            with open(path, "w") as fh:
                fh.write("x")
            results[path] = "written"
        except OSError as exc:
            results[path] = err(exc)
    try:
        os.chmod("/input/manifest.csv", 0o666)
        results["chmod_input"] = "changed"
    except OSError as exc:
        results["chmod_input"] = err(exc)
    try:
        with open("/tmp/ok.txt", "w") as fh:
            fh.write("tmp is writable")
        results["/tmp/ok.txt"] = "written"
    except OSError as exc:
        results["/tmp/ok.txt"] = err(exc)
    record("escape.json", results)
    write_predictions()


def link_shadow():
    os.symlink("/etc/shadow", os.path.join(OUT, "predictions.csv"))


def link_input():
    os.symlink("/input/manifest.csv", os.path.join(OUT, "predictions.csv"))


def bigfile():
    line = b"x" * 1023 + b"\n"
    with open(os.path.join(OUT, "predictions.csv"), "wb") as fh:
        fh.write(b"Filename,Final_score\n")
        for _ in range(200 * 1024):
            fh.write(line)


def flood():
    block = b"\0" * (1024 * 1024)
    with open(os.path.join(OUT, "flood.bin"), "wb") as fh:
        for _ in range(100_000):
            fh.write(block)
            fh.flush()


def chatty():
    line = b"y" * 1023 + b"\n"
    out = sys.stdout.buffer
    for _ in range(100 * 1024):
        out.write(line)
    out.write(b"LAST-LINE-MARKER\n")
    out.flush()
    write_predictions()


def kernel():
    print("kernel:", platform.release())
    write_predictions()


def silent():
    print("done, but wrote nothing")


def exec_from_tmp():
    """Copy /bin/true to /tmp and run it: 0 when /tmp allows exec, else the errno or exit code."""
    import shutil
    import subprocess

    shutil.copy("/bin/true", "/tmp/true")
    os.chmod("/tmp/true", 0o755)
    try:
        return subprocess.run(["/tmp/true"], check=False).returncode
    except OSError as exc:
        return err(exc)


def whoami():
    with open("/proc/self/status") as fh:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
    with open("/proc/self/mounts") as fh:
        mounts = {f[1]: {"type": f[2], "options": f[3].split(",")} for f in (line.split() for line in fh)}
    libc = ctypes.CDLL(None, use_errno=True)
    record(
        "identity.json",
        {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "kernel": platform.release(),
            "no_new_privs": libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            "status": {
                k: status.get(k, "").strip() for k in ("NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "Seccomp")
            },
            "mounts": {m: mounts.get(m) for m in ("/", "/input", "/output", "/tmp")},
            "tmp_exec": exec_from_tmp(),
        },
    )
    write_predictions()


BEHAVIOURS = {
    f.__name__: f
    for f in (
        good,
        sleeper,
        hog,
        forkbomb,
        exit3,
        network,
        escape,
        link_shadow,
        link_input,
        bigfile,
        flood,
        chatty,
        silent,
        kernel,
        whoami,
    )
}

if __name__ == "__main__":
    BEHAVIOURS[sys.argv[1]](*sys.argv[2:])
