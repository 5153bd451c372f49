"""The hostile-image suite (issue 3): every scenario against the real Docker engine.

Each test runs one behaviour of tests/runner/images/models.py through `DockerRunner` in the
production sandbox and asserts the terminal state, the error code and the message — once per
container runtime (issue 12 item 7: runc, and gVisor's runsc where the engine has it registered).
Where gVisor differs, the test says how and why (see `runner.hardening`).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import resource
import socket
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from runner.docker_backend import DockerRunner, handle_for
from runner.errors import ImageInvalidError, PermanentInfraError
from runner.hardening import Runtime
from runner.spec import ErrorCode, RunResult, RunSpec, TerminalState
from server.scoring.predictions import read_predictions

pytestmark = pytest.mark.docker
MiB = 1024**2


@pytest.fixture
def runner(docker_client: docker.DockerClient, runtime: Runtime) -> Iterator[DockerRunner]:
    yield DockerRunner(docker_client, poll_interval_s=0.2, runtime=runtime)


def run(runner: DockerRunner, spec: RunSpec) -> RunResult:
    handle = runner.start(spec)
    assert handle == f"docker:csawm-run-{spec.run_id}-a1"
    return runner.wait(handle, spec)


def assert_gone(client: docker.DockerClient, spec: RunSpec) -> None:
    name = f"csawm-run-{spec.run_id}-a{spec.attempt}"
    assert client.containers.list(all=True, filters={"name": name}) == []


def recorded(spec: RunSpec, name: str) -> dict[str, object]:
    return json.loads((spec.output_dir / name).read_text())


def rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_well_behaved_image_succeeds(runner, make_spec, model_image, run_dirs, docker_client):
    spec = make_spec(model_image("good"))
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    assert result.error_code is None
    assert result.exit_code == 0
    assert "predicting 3 images" in result.log_tail
    assert result.predictions is not None
    preds = read_predictions(result.predictions, expected=run_dirs[2])
    assert list(preds.filenames) == run_dirs[2]
    assert result.peak_memory_bytes is None or 0 < result.peak_memory_bytes <= 256 * MiB
    ident = recorded(spec, "identity.json")
    assert (ident["uid"], ident["gid"]) == (65534, 65534)
    env = ident["env"]
    assert isinstance(env, dict)
    contract = {
        "CSAWM_INPUT_DIR": "/input",
        "CSAWM_OUTPUT_DIR": "/output",
        "CSAWM_CONTRACT": "1",
        "HOME": "/tmp",
    }
    assert {k: env[k] for k in contract} == contract
    # nothing else but the image's own ENV and the HOSTNAME every container gets
    assert set(env) == {*contract, "PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "HOSTNAME"}
    assert_gone(docker_client, spec)


def test_sleeper_times_out(runner, make_spec, model_image, docker_client):
    spec = make_spec(model_image("sleeper"), timeout=timedelta(seconds=2))
    result = run(runner, spec)
    assert result.state is TerminalState.FAILED
    assert result.error_code is ErrorCode.TIMEOUT
    assert "wall-time limit of 2 s" in result.message
    assert "sleeping forever" in result.log_tail
    assert result.predictions is None
    assert_gone(docker_client, spec)


def test_memory_hog_is_oom(runner, make_spec, model_image):
    spec = make_spec(model_image("hog"), memory_bytes=64 * MiB)
    result = run(runner, spec)
    assert result.error_code is ErrorCode.OOM, result
    assert result.state is TerminalState.FAILED
    assert "out of memory (limit of 64 MiB" in result.message
    assert result.exit_code == 137
    assert "without being stopped" not in result.log_tail
    assert result.peak_memory_bytes == 64 * MiB


def test_fork_bomb_is_contained_by_pids_limit(runner, make_spec, model_image):
    spec = make_spec(model_image("forkbomb"), pids=32)
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    fork = recorded(spec, "fork.json")
    assert fork["errno"] == errno.EAGAIN
    assert isinstance(fork["children"], int) and fork["children"] < 32
    # the host can still start processes
    assert subprocess.run(["true"], check=False).returncode == 0


def test_exit_code_3_is_nonzero_exit_with_log_tail(runner, make_spec, model_image):
    result = run(runner, make_spec(model_image("exit3")))
    assert result.state is TerminalState.FAILED
    assert result.error_code is ErrorCode.NONZERO_EXIT
    assert result.exit_code == 3
    assert result.message == "The model exited with code 3."
    assert "line before the failure" in result.log_tail
    assert "fatal: the model gave up" in result.log_tail


def test_model_observes_no_network(runner, make_spec, model_image):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        spec = make_spec(model_image("network", str(port)))
        result = run(runner, spec)
        assert result.state is TerminalState.SUCCEEDED, result
        net = recorded(spec, "net.json")
        # its own loopback has nothing listening; the host's listener is not reachable
        assert net["host_loopback"] == errno.ECONNREFUSED
        assert net["test_net"] in (errno.ENETUNREACH, errno.EHOSTUNREACH, "TimeoutError")
        # issue 11 item 8: a name under .invalid, so a leak would reach nobody; EAI_AGAIN (no
        # resolver answered), not EAI_NONAME (a resolver answered "no such name")
        assert net["dns"] == f"gaierror {socket.EAI_AGAIN}"
        assert net["interfaces"] == ["lo"]
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_writes_outside_output_fail_and_input_is_read_only(runner, make_spec, model_image, run_dirs):
    spec = make_spec(model_image("escape"))
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    esc = recorded(spec, "escape.json")
    for path in (
        "/escape.txt",
        "/etc/escape.txt",
        "/usr/lib/escape.txt",
        "/var/tmp/escape.txt",
        "/input/escape.txt",
        "/input/images/escape.txt",
    ):
        assert esc[path] in (errno.EROFS, errno.EACCES), (path, esc[path])
    assert esc["chmod_input"] in (errno.EROFS, errno.EPERM)
    assert esc["/tmp/ok.txt"] == "written"
    assert sorted(p.name for p in run_dirs[0].iterdir()) == ["images", "manifest.csv"]


@pytest.mark.parametrize(("behaviour", "target"), [("link_shadow", "/etc/shadow"), ("link_input", "/input")])
def test_predictions_symlink_is_output_invalid(runner, make_spec, model_image, behaviour, target):
    spec = make_spec(model_image(behaviour))
    result = run(runner, spec)
    assert result.state is TerminalState.FAILED
    assert result.error_code is ErrorCode.OUTPUT_INVALID
    assert "symbolic link" in result.message
    assert result.predictions is None
    assert (spec.output_dir / "predictions.csv").is_symlink()


def test_200_mb_predictions_is_output_invalid_with_flat_memory(runner, make_spec, model_image):
    before = rss_kib()
    result = run(runner, make_spec(model_image("bigfile")))
    assert result.error_code is ErrorCode.OUTPUT_INVALID, result
    assert "over the limit of 64.0 MiB" in result.message
    assert result.predictions is None
    assert rss_kib() - before < 32 * 1024  # KiB: the file was never read


def test_output_flood_is_stopped(runner, make_spec, model_image):
    spec = make_spec(model_image("flood"), output_dir_bytes=32 * MiB)
    result = run(runner, spec)
    assert result.error_code is ErrorCode.OUTPUT_INVALID, result
    assert "more than 32 MiB to /output" in result.message


def test_100_mb_of_stdout_gives_only_the_log_tail(runner, make_spec, model_image):
    before = rss_kib()
    spec = make_spec(model_image("chatty"), log_tail_lines=50, log_tail_bytes=4096)
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    assert len(result.log_tail.encode()) <= 4096
    assert result.log_tail.splitlines()[-1] == "LAST-LINE-MARKER"
    assert len(result.log_tail.splitlines()) <= 50
    assert rss_kib() - before < 32 * 1024


def test_user_root_image_still_runs_as_nobody(runner, make_spec, model_image):
    spec = make_spec(model_image("whoami", user="root"), tmp_bytes=8 * MiB)
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    ident = recorded(spec, "identity.json")
    assert (ident["uid"], ident["gid"]) == (65534, 65534)
    assert set(ident["groups"]) <= {65534}  # no supplementary group of root


def test_model_runs_under_the_configured_runtime(runner, make_spec, model_image, runtime):
    """runc shares the host's kernel; under runsc the model talks to gVisor's own."""
    spec = make_spec(model_image("whoami"), tmp_bytes=8 * MiB)
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    kernel = recorded(spec, "identity.json")["kernel"]
    if runtime == "runc":
        assert kernel == platform.release()
    else:
        assert kernel != platform.release(), "runsc was asked for, but the model saw the host's kernel"


def test_sandbox_as_the_model_sees_it(runner, make_spec, model_image, runtime):
    """Capabilities, no-new-privileges, seccomp and mounts, read from /proc inside the container."""
    spec = make_spec(model_image("whoami"), tmp_bytes=8 * MiB)
    result = run(runner, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    ident = recorded(spec, "identity.json")
    assert ident["no_new_privs"] == 1
    status = ident["status"]
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0000000000000000"
    if runtime == "runc":
        assert status["NoNewPrivs"] == "1"
        assert status["Seccomp"] == "2"  # the engine's default seccomp filter is on
    else:
        # gVisor's /proc has no NoNewPrivs line, and the engine's seccomp profile is not loaded
        # inside the sandbox: the filter is on the Sentry, on the host (next test)
        assert (status["NoNewPrivs"], status["Seccomp"]) == ("", "0")
    mounts = ident["mounts"]
    assert "ro" in mounts["/"]["options"]
    assert "ro" in mounts["/input"]["options"]
    assert "rw" in mounts["/output"]["options"]
    tmp = mounts["/tmp"]
    assert tmp["type"] == "tmpfs"
    assert "noexec" not in tmp["options"] and ident["tmp_exec"] == 0  # JIT caches dlopen from /tmp
    if runtime == "runc":
        assert {"rw", "nosuid", "nodev", "size=8192k"} <= set(tmp["options"])
    else:  # gVisor lists neither nosuid nor nodev (no_new_privs and no capabilities cover both)
        assert {"rw", f"size={8 * MiB}"} <= set(tmp["options"])


def host_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def test_sandbox_as_the_host_sees_it(runner, make_spec, model_image, docker_client, runtime):
    """The container's first process on the host (runc: the init; runsc: gVisor's Sentry) is not
    root, cannot gain privileges and is seccomp-filtered."""
    spec = make_spec(model_image("sleeper"))
    handle = runner.start(spec)
    try:
        pid = docker_client.containers.get(handle.removeprefix("docker:")).attrs["State"]["Pid"]
        if not os.path.exists(f"/proc/{pid}"):
            pytest.skip(f"the engine's process {pid} is not visible here (another pid namespace)")
        status = host_status(pid)
        assert status["Uid"].split() == ["65534"] * 4, status["Uid"]
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        if runtime == "runc":
            assert status["CapEff"].strip() == "0000000000000000"
    finally:
        runner.cancel(handle)
        runner.cleanup(handle)
    assert_gone(docker_client, spec)


def test_writing_nothing_is_output_missing(runner, make_spec, model_image):
    result = run(runner, make_spec(model_image("silent")))
    assert result.state is TerminalState.FAILED
    assert result.error_code is ErrorCode.OUTPUT_MISSING
    assert result.message == "The model wrote no /output/predictions.csv."
    assert "wrote nothing" in result.log_tail


def test_missing_image_is_image_invalid(runner, make_spec):
    with pytest.raises(ImageInvalidError, match="not present on this engine"):
        runner.start(make_spec("csawm-runner-test-does-not-exist:nope"))


def test_missing_entrypoint_is_image_invalid(runner, make_spec, build_image):
    result = run(runner, make_spec(build_image("noentry", 'CMD ["/no/such/binary"]')))
    assert result.error_code is ErrorCode.IMAGE_INVALID
    assert "not found (exit code 127)" in result.message
    assert "/no/such/binary" in result.log_tail


def test_cancel_from_another_thread(runner, make_spec, model_image, docker_client):
    spec = make_spec(model_image("sleeper"))
    handle = runner.start(spec)
    timer = threading.Timer(1.0, runner.cancel, args=(handle,))
    timer.start()
    result = runner.wait(handle, spec)
    timer.join()
    assert result.state is TerminalState.CANCELLED
    assert result.error_code is ErrorCode.CANCELLED
    runner.cancel(handle)  # gone already: no error
    runner.cleanup(handle)
    assert_gone(docker_client, spec)


def test_restarted_worker_finds_and_collects_the_run(make_spec, model_image, docker_client, runtime):
    spec = make_spec(model_image("good"))
    first = DockerRunner(docker_client, runtime=runtime)
    handle = first.start(spec)
    second = DockerRunner(docker_client, poll_interval_s=0.2, runtime=runtime)  # a new process
    assert second.start(spec) == handle == handle_for(spec)  # idempotent: no second container
    result = second.wait(handle, spec)
    assert result.state is TerminalState.SUCCEEDED, result
    assert_gone(docker_client, spec)


def test_output_dir_must_be_fresh(runner, make_spec, model_image):
    spec = make_spec(model_image("good"))
    spec.output_dir.mkdir()
    (spec.output_dir / "stale.csv").write_text("x")
    with pytest.raises(PermanentInfraError, match="not empty"):
        runner.start(spec)


def test_load_archive_round_trip(tmp_path: Path, docker_client, model_image):
    tag = model_image("good")
    archive = tmp_path / "image.tar"
    with archive.open("wb") as fh:
        for chunk in docker_client.images.get(tag).save(named=True):
            fh.write(chunk)
    image_id = DockerRunner(docker_client).load_archive(archive)
    assert image_id == docker_client.images.get(tag).id


def test_runtime_unknown_to_the_engine_is_a_permanent_infra_error(docker_client, make_spec, base_image):
    """CSAWM_RUN_RUNTIME=runsc on an engine without it: operators are told how to fix it (issue 12)."""
    with pytest.raises(docker.errors.APIError) as refused:
        docker_client.containers.create(base_image, ["true"], runtime="csawm-test-no-such-runtime")
    error = DockerRunner._start_error(refused.value, make_spec(base_image), "creating the container")
    assert isinstance(error, PermanentInfraError)
    assert "CSAWM_RUN_RUNTIME" in error.message and "scripts/ensure-docker" in error.message
    assert "csawm-test-no-such-runtime" in error.message  # the engine's own words are kept


def test_unknown_runtime_is_refused_before_the_engine_is_asked():
    with pytest.raises(ValueError, match="unknown container runtime 'kata'; expected one of runc, runsc"):
        DockerRunner(runtime="kata")  # type: ignore[arg-type]
