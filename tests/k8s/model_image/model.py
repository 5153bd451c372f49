"""A tiny contract-v1 model for the Kubernetes end-to-end tests. Behaviour from argv[1]; every
failure happens on the hidden set only (more than 10 images), so the preflight Job passes first.

good      predict every manifest row (score = hash of the file name)
crash     exit 3 with a traceback
sleep     sleep far past any test's run timeout
oom       allocate memory until the engine's memory limit kills it
symlink   make /output/predictions.csv a symbolic link to /etc/passwd (the collector must refuse it)
survey*   an attacker: like good, after printing every file it can list and read under /input, as
          one line ``survey {"<path>": "<sha256 of its bytes, 16 hex>", ...}``
anything else: like good

Every behaviour first checks its sandbox (exit 4 naming the first broken promise): not root, the
root filesystem and /input read-only, /tmp and /output writable, no network interface but ``lo``,
no capabilities, no-new-privileges.
"""

import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

behaviour = sys.argv[1]
inp = Path(os.environ["CSAWM_INPUT_DIR"])
out = Path(os.environ["CSAWM_OUTPUT_DIR"])


def writable(folder):
    try:
        (Path(folder) / ".probe").write_bytes(b"x")
    except OSError:
        return False
    (Path(folder) / ".probe").unlink()
    return True


status = dict(
    line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":\t" in line
)
broken = [
    what
    for what, ok in (
        ("runs as root", os.getuid() != 0),
        ("root filesystem writable", not writable("/opt")),
        ("/input writable", not writable(inp)),
        ("/tmp not writable", writable("/tmp")),
        ("/output not writable", writable(out)),
        ("network interfaces", sorted(os.listdir("/sys/class/net")) == ["lo"]),
        ("capabilities", int(status["CapEff"].strip(), 16) == 0),
        ("no-new-privileges off", status.get("NoNewPrivs", "0").strip() == "1"),
    )
    if not ok
]
if broken:
    print(f"sandbox broken: {', '.join(broken)}", file=sys.stderr, flush=True)
    sys.exit(4)
with open(inp / "manifest.csv", newline="") as fh:
    names = [row["Filename"] for row in csv.DictReader(fh)]
hidden = len(names) > 10
print(f"model {behaviour}: {len(names)} images, uid {os.getuid()}", flush=True)
if hidden and behaviour == "crash":
    print("boom on the hidden set", file=sys.stderr, flush=True)
    sys.exit(3)
if hidden and behaviour == "sleep":
    time.sleep(3600)
if hidden and behaviour == "oom":
    hog = []
    for _ in range(4096):
        hog.append(bytearray(16 * 1024 * 1024))
        for i in range(0, len(hog[-1]), 4096):
            hog[-1][i] = 1
if behaviour.startswith("survey"):
    seen = {
        str(path.relative_to(inp)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted(inp.rglob("*"))
        if path.is_file()
    }
    print("survey " + json.dumps(seen, separators=(",", ":")), flush=True)
if hidden and behaviour == "symlink":
    os.symlink("/etc/passwd", out / "predictions.csv")
    sys.exit(0)
with open(out / "predictions.csv", "w") as fh:
    fh.write("Filename;Final_score\n")
    for name in names:
        score = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
        fh.write(f"{name};{score:.6f}\n")
print("done", flush=True)
