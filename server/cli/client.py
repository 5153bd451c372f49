"""The researcher's commands: `csawm submit | status | logs | leaderboard | quota | agreement`.

They talk to a server over HTTP (``--server`` / ``CSAWM_SERVER_URL``, ``--token`` / ``CSAWM_TOKEN``).
`submit` streams the archive from disk, or for an image name runs ``docker save`` and streams its
output, so memory stays flat whatever the image size; it prints the report page's URL and, with
``--wait``, shows the run's stage and elapsed time on stderr (a spinner on a terminal, one line per
stage otherwise) and ends with tau-b and AMAE with their 95% CIs, or, for a failed run, with the log
tail (not the preflight's after a hidden failure), whether it was charged or refunded and why, and
the next step, all as the server's ``outcome`` words them (`server.disclosure.run_view`). Every read
command takes ``--json`` (stdout then holds only the server's JSON). Any error is printed as one
line on stderr. Names are shown with invisible and direction-changing characters escaped
(``\u202e``); ``--json`` keeps them.

Before anything is saved or uploaded, `submit` checks in seconds what would otherwise be refused
after the whole upload: the method card is validated by the server's own model
(`server.submissions.schemas.MethodCard`, parsed as the server parses it), a local image must exist,
the data-use agreement, where the server has one, must be accepted (``GET /api/v1/agreements``),
and the team's quota (``GET /api/v1/quota``) must have a free slot and room for the archive.

Exit codes (docs/cli.md): 0 ok; 1 the run failed or was cancelled; 2 usage or refused input (a
bad flag or file, a 4xx answer such as a refused archive, over quota, not found, the data-use
agreement not accepted); 3 server unreachable, no or refused token (401/403), a server fault (5xx)
or an answer that is not the API's; 75 the server is paused for maintenance: try later.
Ctrl-C exits 130: during the upload nothing is submitted; during ``--wait`` the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table
from rich.text import Text

from server.cli.reference import TargetError, registry_reference
from server.core import wording
from server.core.text import visible
from server.registry.reference import ImageReference
from server.runs.words import NO_REVIEW, REVIEW_WORDS
from server.scoring.results import Estimate, Report
from server.submissions.schemas import MethodCard
from server.submissions.starter_card import unedited_fields

EXIT_FAILED, EXIT_USAGE, EXIT_SERVER = 1, 2, 3
EXIT_INTERRUPTED = 130  # the shell's code for SIGINT: stopped waiting, the run itself goes on
EXIT_TRY_LATER = 75  # sysexits' EX_TEMPFAIL: the server is paused for maintenance (503 ``paused``)
CHUNK = 1024 * 1024
TERMINAL = ("succeeded", "failed", "cancelled")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")

ServerOpt = Annotated[str, typer.Option("--server", envvar="CSAWM_SERVER_URL", help="Server base URL.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="CSAWM_TOKEN", help="API token.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the raw JSON.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
POLL_S = 2.0
REFRESH_S = 0.25
LOG_TAIL_LINES = 20  # of a failed run, printed by `submit --wait`; `csawm logs ID` shows the whole tail
AGREEMENT_CODES = ("agreement_required", "agreement_outdated")
#: 403 answers that are not about the token (docs/cli.md: exit 2): accept the agreement, wait for a phase.
REFUSED_NOT_AUTH = (*AGREEMENT_CODES, "phase_closed")
QUOTA_WINDOWS = {"per_day": "in the last 24 h", "per_week": "in the last 7 days", "total": "in this phase"}


def _die(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _client(server: str, token: str | None, *, auth: bool = True) -> httpx.Client:
    headers = {}
    if auth:
        if not token:
            _die("no API token: pass --token or set CSAWM_TOKEN", EXIT_SERVER)
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(60.0, write=None, pool=None)
    return httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


def _check(response: httpx.Response) -> Any:
    """Return the JSON body of a 2xx response; otherwise print the server's message and exit."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            _die(
                f"{response.request.url} answered {response.status_code} without JSON; "
                "is --server / CSAWM_SERVER_URL a csawm server?",
                EXIT_SERVER,
            )
    try:
        error = response.json().get("error") or {}
        message = str(error.get("message") or response.text)
    except (ValueError, AttributeError):
        error, message = {}, response.text.strip() or response.reason_phrase
    if response.status_code == 429 and error.get("next_slot_at"):
        message += f" (next slot at {error['next_slot_at']})"
    if response.status_code == 409 and error.get("submission_id"):
        message += f" (see `csawm status {error['submission_id']}`)"
    status = response.status_code
    code = EXIT_SERVER if status in (401, 403) or status >= 500 else EXIT_USAGE
    if error.get("code") == "paused":  # a maintenance pause (docs/cli.md): nothing is wrong, come back
        code = EXIT_TRY_LATER
    if error.get("code") in REFUSED_NOT_AUTH:  # a 403 that no other token fixes: a refused request
        code = EXIT_USAGE
    _die(f"{message} [HTTP {status}]", code)


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Any:
    try:
        return _check(client.request(method, url, **kwargs))
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        _die(f"invalid server URL {str(client.base_url)!r}: {exc}", EXIT_USAGE)
    except httpx.TransportError as exc:
        _die(f"cannot reach {client.base_url}: {exc.__class__.__name__}: {exc}", EXIT_SERVER)


def _file_chunks(path: Path, progress: Progress, task: Any) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            progress.advance(task, len(chunk))
            yield chunk


def _docker_save_chunks(image: str, progress: Progress, task: Any, proc_box: list[Any]) -> Iterator[bytes]:
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc_box.append(proc)
    assert proc.stdout is not None
    while chunk := proc.stdout.read(CHUNK):
        progress.advance(task, len(chunk))
        yield chunk
    if proc.wait() != 0:
        stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise _DockerSaveError(stderr or f"docker save exited with {proc.returncode}")


class _DockerSaveError(Exception):
    pass


def _card_param(path: Path) -> str:
    """The method card as the JSON the server receives, validated exactly as the server validates
    it (`MethodCard.model_validate_json`, unknown keys refused); exits 2 naming each bad field."""
    try:
        text = json.dumps(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        _die(f"--method-card {path}: {exc}", EXIT_USAGE)
    try:
        MethodCard.model_validate_json(text)
    except ValidationError as exc:
        problems = wording.problems(exc.errors(), "method_card")
        _die(f"--method-card {path}: {problems} (nothing was uploaded)", EXIT_USAGE)
    # valid, so not refused; the maintainers see the same flag in their review
    if unedited := unedited_fields(json.loads(text)):
        typer.echo(
            f"warning: --method-card {path} is the starter kit's card: {', '.join(unedited)} still hold "
            "the text `csawm init` wrote; say what your model is and how it was trained, or reviewers "
            "will ask (submitting anyway)",
            err=True,
        )
    return text


def _reference_body(reference: ImageReference, params: dict[str, str]) -> bytes:
    """The JSON `RegistrySubmissionIn` (docs/api.md) of a registry submission with `params`'s fields."""
    fields: dict[str, Any] = {**params, "image": str(reference)}
    if "method_card" in fields:
        fields["method_card"] = json.loads(fields["method_card"])
    return json.dumps(fields).encode()


def _require_local_image(image: str) -> tuple[str, int]:
    """Exit 2 unless the local engine has `image` (``docker image inspect``), before any upload;
    return its image id and size in bytes."""
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", image],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        _die("docker is not installed (needed to save an image by name)", EXIT_USAGE)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        _die(f"no local image {image!r} ({detail}); build it, or pass a docker save archive", EXIT_USAGE)
    image_id, size = proc.stdout.split()
    return image_id, int(size)


def _require_room(image: str, size: int, limit: int | None) -> None:
    """Exit 2 when the image (its size in the local engine, close to its `docker save` archive's)
    is larger than the server's upload cap, before anything is saved or uploaded."""
    if limit is not None and size > limit:
        _die(
            f"image {image} is {size / 1e6:.0f} MB ({size} bytes); this server accepts at most "
            f"{limit / 1e6:.0f} MB ({limit} bytes): make the image smaller (a slim base image, no "
            "build tools or caches, weights in one layer) — nothing was uploaded",
            EXIT_USAGE,
        )


def _require_new_image(client: httpx.Client, image_id: str) -> None:
    """Exit 2 when the team already submitted this image in the open phase (the server would answer
    409 after the whole upload)."""
    body = _request(client, "GET", "/api/v1/submissions/duplicate", params={"image": image_id})
    if body.get("duplicate"):
        _die(
            f"your team already submitted image {image_id} as submission {body['submission_id']} in "
            f"phase {body['phase']}: see `csawm status {body['submission_id']}`; to enter a changed "
            "model, rebuild it (nothing was uploaded)",
            EXIT_USAGE,
        )


def _require_quota(client: httpx.Client) -> int | None:
    """Exit 2 when the team has no free slot (the server would answer 429 after the upload);
    return the server's upload limit in bytes."""
    body: dict[str, Any] = _request(client, "GET", "/api/v1/quota")
    if not body.get("open", True):
        _die(f"{_closed_words(body)} (nothing was uploaded)", EXIT_USAGE)
    if not body.get("allowed", True):
        used, limits = body["used"], body["limits"]
        reasons = [
            f"{used[key]}/{limits[key]} submissions {QUOTA_WINDOWS[key]}"
            if key in QUOTA_WINDOWS
            else f"{used['active']}/{limits['active']} runs still active"
            for key in body.get("blocked_by", [])
        ]
        when = f"; next slot at {body['next_slot_at']}" if body.get("next_slot_at") else ""
        message = f"quota exceeded: {'; '.join(reasons)}{when}"
        _die(f"{message} (nothing was uploaded; see `csawm quota`)", EXIT_USAGE)
    compute = body.get("compute") or {}
    if compute.get("budget_s") is not None and compute.get("used_s", 0) >= compute["budget_s"]:
        _die(
            f"compute budget used: {compute['used_s'] // 60} of {compute['budget_s'] // 60} minutes in phase "
            f"{body.get('phase')} (nothing was uploaded; see `csawm quota`)",
            EXIT_USAGE,
        )
    value = body.get("max_upload_bytes")
    return int(value) if isinstance(value, int) else None


def _closed_words(quota: dict[str, Any]) -> str:
    """What `GET /api/v1/quota` of a closed phase means: no submission until the next phase opens."""
    state = f"closed on {quota['closes_at']}" if quota.get("closes_at") else "is not open yet"
    nxt = quota.get("next_opens_at")
    then = f"the next phase opens on {nxt}" if nxt else "no further phase is scheduled"
    return f"submissions are closed: phase {quota['phase']} {state}; {then}"


def _require_intake_open(client: httpx.Client) -> None:
    """Exit 75 (try later) while the server's intake is paused for maintenance, with its message
    (the server would answer 503 ``paused`` before reading the upload)."""
    try:
        response = client.get("/api/v1/status")
    except httpx.HTTPError:
        return  # the next request reports an unreachable server
    if not response.is_success:
        return  # a server before issue 22 has no status: nothing to check
    paused = response.json().get("paused") or {}
    if paused.get("intake"):
        message = f": {paused['message']}" if paused.get("message") else ""
        _die(
            f"submissions are paused for maintenance{message}; try again later (nothing was uploaded)",
            EXIT_TRY_LATER,
        )


def _require_agreement(client: httpx.Client) -> None:
    """Exit 2 when the server has a data-use agreement the caller has not accepted in its current
    version (the server would answer 403 ``agreement_required``), saying how to accept it."""
    body: dict[str, Any] = _request(client, "GET", "/api/v1/agreements")
    if body.get("required") and not body.get("accepted"):
        version = str(body.get("version") or "")[:12]
        _die(
            f"this server's data-use agreement (version {version}) is not accepted yet: read it with "
            f"`csawm agreement`, accept it with `csawm agreement --accept` or on {body.get('url')} "
            "(nothing was uploaded)",
            EXIT_USAGE,
        )


def submit(
    target: Annotated[
        str,
        typer.Argument(
            help="A `docker save` archive (.tar, .tar.gz), a local image name, or a registry reference "
            "HOST/REPO@sha256:<digest>."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Submission name shown on the leaderboard.")],
    description: Annotated[str | None, typer.Option("--description")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Paper or code URL.")] = None,
    method_card: Annotated[
        Path | None, typer.Option("--method-card", help="JSON file with method card fields.", exists=True)
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the result; exit 1 if the run fails.")
    ] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload a model image (streamed, with a progress bar) or send a registry reference, and queue
    it for evaluation."""
    params = {"name": name, **{k: v for k, v in (("description", description), ("url", url)) if v}}
    if method_card is not None:
        params["method_card"] = _card_param(method_card)
    path = Path(target)
    try:
        reference = None if path.is_file() else registry_reference(target)
    except TargetError as exc:
        _die(f"{exc} (nothing was sent)", EXIT_USAGE)
    if not path.is_file() and target.endswith(ARCHIVE_SUFFIXES):
        _die(f"{target}: no such archive file", EXIT_USAGE)
    err = Console(stderr=True)  # built per call so a test runner's streams are honoured
    with _client(server, token) as client:
        local = None if path.is_file() or reference is not None else _require_local_image(target)
        _require_intake_open(client)
        _require_agreement(client)
        limit = _require_quota(client)
        if local is not None:
            _require_room(target, local[1], limit)
            _require_new_image(client, local[0])
        if path.is_file() and limit is not None and path.stat().st_size > limit:
            _die(f"{path} is {path.stat().st_size} bytes; the server accepts at most {limit}", EXIT_USAGE)
        procs: list[Any] = []
        columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            if reference is not None:  # the server checks the registry's manifest: no upload
                body: Iterator[bytes] = iter([_reference_body(reference, params)])
                headers, params = {"Content-Type": "application/json"}, {}
            elif path.is_file():
                task = progress.add_task("upload", total=path.stat().st_size)
                body = _file_chunks(path, progress, task)
                headers = {"Content-Length": str(path.stat().st_size), "Content-Type": "application/x-tar"}
            else:
                task = progress.add_task("upload", total=None)
                body = _docker_save_chunks(target, progress, task, procs)
                headers = {"Content-Type": "application/x-tar"}
            try:
                # After the last byte the server inspects the archive and, with a registry, pushes it
                # before it answers: no read timeout on this one request (the server bounds it).
                response = client.post(
                    "/api/v1/submissions",
                    params=params,
                    content=body,
                    headers=headers,
                    timeout=httpx.Timeout(60.0, read=None, write=None, pool=None),
                )
            except _DockerSaveError as exc:
                _die(f"docker save {target} failed: {exc}", EXIT_USAGE)
            except FileNotFoundError:
                _die("docker is not installed (needed to save an image by name)", EXIT_USAGE)
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                _die(f"invalid server URL {server!r}: {exc}", EXIT_USAGE)
            except (httpx.WriteError, httpx.RemoteProtocolError) as exc:
                hint = f" (the upload limit is {limit} bytes)" if limit else ""
                _die(f"the server closed the connection during the upload{hint}: {exc}", EXIT_USAGE)
            except httpx.TransportError as exc:
                _die(f"cannot reach {client.base_url}: {exc}", EXIT_SERVER)
            except KeyboardInterrupt:
                _die("upload interrupted; nothing was submitted", EXIT_INTERRUPTED)
            finally:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
        sub = _check(response)
        sub_id = int(sub["id"])
        url_line = f"report: {server.rstrip('/')}/submissions/{sub_id}"  # status, metrics, plots, logs
        if as_json:
            typer.echo(url_line, err=True)
            if not wait:
                _print(sub)
        else:
            typer.echo(f"submission {sub_id} {sub['status']} (image {sub['image_digest']})\n{url_line}")
        if not wait:
            return
        try:
            final = _wait(client, sub_id, err)
        except KeyboardInterrupt:
            typer.echo(f"stopped waiting; the run goes on: csawm status {sub_id}", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        _show_status(final, as_json)
        if final["status"] != "succeeded":
            if not as_json:
                _show_failure(client, final, target)
            raise typer.Exit(EXIT_FAILED)


def _show_failure(client: httpx.Client, sub: dict[str, Any], target: str) -> None:
    """After a failed or cancelled run: the last `LOG_TAIL_LINES` of its log, whether it was charged
    and the next step, as the server words them (`outcome`, with the submitted image or archive in
    place of ``IMAGE``)."""
    sub_id = sub["id"]
    body = _request(client, "GET", f"/api/v1/submissions/{sub_id}/logs")
    lines = (body.get("log_tail") or "").splitlines()
    if lines and sub.get("failed_phase") not in ("hidden", "scoring"):
        shown = lines[-LOG_TAIL_LINES:]
        typer.echo(f"--- log tail (last {len(shown)} of {len(lines)} lines; all: csawm logs {sub_id}) ---")
        typer.echo("\n".join(shown))
        typer.echo("---")
    elif not lines and sub.get("failed_phase") not in ("hidden", "scoring"):
        typer.echo(f"(the run left no log output; csawm logs {sub_id})")
    outcome = sub.get("outcome") or {}
    step = str(outcome.get("next_step") or f"see `csawm status {sub_id}` and the report page")
    typer.echo(f"next: {step.replace('IMAGE', target)}.")


def _elapsed(seconds: float) -> str:
    """``"42s"``, ``"3m 05s"``, ``"1h 02m"``."""
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60:02d}s"
    return f"{total // 3600}h {total % 3600 // 60:02d}m"


def _stage(sub: dict[str, Any]) -> str:
    """The run's status plus the note of its latest event (e.g. why a Job is still queued)."""
    events = sub.get("events") or []
    note = events[-1].get("note") if events and events[-1].get("status") == sub["status"] else None
    place = sub.get("queue")
    if isinstance(place, dict):
        note = _queue_place(place)
    return f"{sub['status']}: {note}" if note else str(sub["status"])


def _queue_place(place: dict[str, Any]) -> str:
    """``position 3 (2 ahead), about 20 min`` (the estimate only where the server has one)."""
    eta = f", about {int(place['eta_s']) // 60} min" if place.get("eta_s") is not None else ""
    return f"position {place['position']} ({place['ahead']} ahead){eta}"


def _wait(client: httpx.Client, sub_id: int, err: Console, poll_s: float = POLL_S) -> dict[str, Any]:
    """Poll until the run ends. On a terminal: a spinner with the stage and the time since the
    upload, refreshed every `REFRESH_S`; otherwise one stderr line per change of stage."""
    started = time.monotonic()
    spinner = err.status("waiting for the run", spinner="dots") if err.is_terminal else None
    last = None
    with spinner if spinner is not None else contextlib.nullcontext():
        while True:
            sub: dict[str, Any] = _request(client, "GET", f"/api/v1/submissions/{sub_id}")
            stage = _stage(sub)
            if spinner is None and stage != last:
                typer.echo(f"  {stage} ({_elapsed(time.monotonic() - started)})", err=True)
            last = stage
            next_poll = time.monotonic() + poll_s
            while True:
                if spinner is not None:
                    spinner.update(f"submission {sub_id}: {stage} · {_elapsed(time.monotonic() - started)}")
                if sub["status"] in TERMINAL:
                    return sub
                remaining = next_poll - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(REFRESH_S, remaining))


def _print(value: Any, as_json: bool = True) -> bool:
    """Print `value` as JSON when `as_json`; whether it did (the caller then prints nothing else)."""
    if as_json:
        typer.echo(json.dumps(value, indent=2))
    return as_json


def _fmt(metric: Estimate) -> str:
    if metric.value is None:
        return "-"
    ci = metric.ci95
    text = f"{metric.value:.4f}"
    return f"{text} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else text


def _show_status(sub: dict[str, Any], as_json: bool) -> None:
    if _print(sub, as_json):
        return
    lines = [f"submission {sub['id']} '{visible(sub['name'])}' ({visible(sub['team'])}): {sub['status']}"]
    if isinstance(sub.get("queue"), dict):
        lines.append(f"  queue: {_queue_place(sub['queue'])}")
    if sub.get("error_code"):
        lines.append(f"  error: {sub['error_code']} in {sub.get('failed_phase')}: {sub.get('error_message')}")
    report = Report.read(sub.get("metrics"))
    if report is not None and report.has_masking:
        lines.append(f"  tau-b  {_fmt(report.kendall_tau_b)}   (higher is better; value [95% CI])")
        lines.append(f"  AMAE   {_fmt(report.amae)}   (lower is better)")
    ladder = sub.get("ladder")
    if isinstance(ladder, dict):
        shown = ladder.get("displayed")
        board = "-" if shown is None else f"{shown:g}"
        approved = sub.get("review_state") == "approved"
        moved = "moved the board" if approved else "moves the board once approved"
        lines.append(f"  board  {board}   ({ladder.get('note') or moved})")
    if sub.get("scores_withheld"):
        lines.append(f"  scores withheld: {sub['scores_withheld']}")
    if sub.get("selected") is not None:
        lines.append(f"  selected for the final ranking: {'yes' if sub['selected'] else 'no'}")
    outcome = sub.get("outcome")
    if isinstance(outcome, dict):
        lines.append(f"  quota: {outcome['charge']}")
        lines.append(f"  log: {outcome['log']}")
        if outcome.get("hint"):
            lines.append(f"  hint: exception type {outcome['hint']}")
    review = REVIEW_WORDS.get(sub.get("review_state") or "", NO_REVIEW)
    if sub.get("review_reason"):
        review += f": {visible(sub['review_reason'])}"
    lines.append(f"  review: {review}   image: {sub.get('image_digest')}")
    for event in sub.get("events") or []:
        lines.append(f"  {event['at']}  {event['status']:<10} {event.get('note') or ''}")
    typer.echo("\n".join(lines))


def status(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a submission: status timeline, error, metrics."""
    with _client(server, token) as client:
        sub = _request(client, "GET", f"/api/v1/submissions/{submission_id}")
    _show_status(sub, as_json)
    if sub["status"] in ("failed", "cancelled"):
        raise typer.Exit(EXIT_FAILED)


def logs(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the tail of the model's output."""
    with _client(server, token) as client:
        body = _request(client, "GET", f"/api/v1/submissions/{submission_id}/logs")
    if _print(body, as_json):
        return
    tail = body.get("log_tail") or ""
    hidden = body.get("hidden_log_tail")
    if hidden is not None:  # a maintainer: both tails, each named
        typer.echo(f"--- preflight log (submission {submission_id}) ---")
    typer.echo(tail, nl=not tail.endswith("\n"))
    if hidden is not None:
        typer.echo("--- hidden run's log (maintainers only) ---")
        typer.echo(hidden, nl=not hidden.endswith("\n"))


def leaderboard(
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    phase: Annotated[
        str | None, typer.Option("--phase", help="Phase name (default: the current one).")
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="expert_1 … expert_5: order the models by that radiologist."),
    ] = None,
    group: Annotated[str | None, typer.Option("--group", help="tier: group the rows by tier.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the leaderboard (sends your token when one is configured)."""
    params = {k: v for k, v in (("phase", phase), ("reference", reference), ("group", group)) if v}
    # The board is public; a token is sent when given, so the board shows what the API shows that
    # account (a maintainer sees the figures a phase withholds).
    with _client(server, token, auth=bool(token)) as client:
        body = _request(client, "GET", "/api/v1/leaderboard", params=params or None)
    if _print(body, as_json):
        return
    if isinstance(body.get("phase"), dict):
        typer.echo(f"phase {body['phase']['name']} ({body['phase']['visibility']})")
    shown_reference = body.get("reference") or {}
    if shown_reference.get("note"):
        typer.echo(f"order: consensus ({shown_reference['note']})")
    elif shown_reference.get("expert"):
        typer.echo(
            f"order: models by their tau-b against {shown_reference['expert']} (# stays the consensus rank)"
        )
    by_expert = shown_reference.get("expert") and not shown_reference.get("note")  # the reference column
    table = Table("#", "tier", "rank 95%", "kind", "team", "name", "tau-b [95% CI]", "AMAE [95% CI]", "mark")
    if by_expert:
        table.add_column(f"tau-b vs {shown_reference['expert']}")
    rows = body["rows"]
    groups = body.get("groups")
    order = [index for g in groups for index in g["rows"]] if groups else list(range(len(rows)))
    starts = {g["rows"][0]: g["tier"] for g in groups or () if g["rows"]}
    for index in order:
        row = rows[index]
        if index in starts:
            tier = starts[index]
            table.add_section()
            table.add_row("", "", "", "", "", Text("tier " + (str(tier) if tier is not None else "none")))
        mark = "leader" if row.get("is_leader") else "tied" if row.get("tied_with_leader") else ""
        if row["kind"] == "expert":
            mark = "reference band"
        interval = row.get("rank_ci95")
        table.add_row(
            "" if row["rank"] is None else str(row["rank"]),  # expert bands are not ranked
            "" if row.get("tier") is None else str(row["tier"]),
            f"{interval[0]}-{interval[1]}" if interval else "",
            row["kind"],
            Text(visible(row.get("team") or "")),  # Text: a name is never read as Rich markup
            Text(visible(row["name"])),
            _fmt(Estimate.read(row["kendall_tau_b"])),
            _fmt(Estimate.read(row["amae"])),
            mark,
            *([_by_reference(row)] if by_expert else []),
        )
    Console(width=max(160, Console().width)).print(table)
    stability = body.get("stability") or {}
    if stability.get("kendall_tau_b"):
        values = ", ".join(
            f"{name} {'-' if value is None else f'{value:.2f}'}"
            for name, value in stability["kendall_tau_b"].items()
        )
        typer.echo(f"stability (Kendall tau-b of each order against the consensus order): {values}")
    elif stability.get("note"):
        typer.echo(f"stability: {stability['note']}")
    for item in body.get("pending") or []:
        progress = item.get("progress") or {}
        step = f" (step {progress['step']}/{progress['steps']})" if progress.get("steps") else ""
        typer.echo(f"on its way: {visible(item['name'])} [{item['kind']}] {item['state']}{step}")


def _by_reference(row: dict[str, Any]) -> str:
    """The reference column's cell: the row's tau-b against the chosen expert, and its rank by it."""
    mark = row.get("by_reference") or {}
    value = mark.get("kendall_tau_b")
    return f"{value:.3f} (#{mark['rank']})" if value is not None else "-"


def quota(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Show your team's quota: used, limits and the next free slot."""
    with _client(server, token) as client:
        body = _request(client, "GET", "/api/v1/quota")
    if _print(body, as_json):
        return
    used, limits = body["used"], body["limits"]
    typer.echo(f"team {visible(body['team'])}, phase {body['phase']}")
    if not body.get("open", True):  # after the close the counts of the phase say nothing you can use
        typer.echo(f"  {_closed_words(body)}")
        typer.echo(f"  ({used['total']} of {limits['total']} submissions were used in phase {body['phase']})")
        return
    rows = {"per_day": "last 24 h", "per_week": "last 7 days", "total": "this phase", "active": "active runs"}
    for key, label in rows.items():
        typer.echo(f"  {label:<12} {used[key]}/{limits[key]}")
    if not body["allowed"]:
        blocked = "not in this phase" if "total" in body["blocked_by"] else "when an active run ends"
        when = body["next_slot_at"] or blocked
        typer.echo(f"  over quota ({', '.join(body['blocked_by'])}); next slot: {when}")
    compute = body.get("compute") or {}
    if compute.get("budget_s") is not None:
        typer.echo(f"  {'compute':<12} {compute['used_s'] // 60}/{compute['budget_s'] // 60} min")


def agreement(
    accept: Annotated[
        bool, typer.Option("--accept", help="Accept the agreement (the version shown, or --version).")
    ] = False,
    version: Annotated[
        str | None,
        typer.Option("--version", help="With --accept: the version you read (refused once outdated)."),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the server's data-use agreement and whether you accepted it; --accept accepts it."""
    if version is not None and not accept:
        _die("--version goes with --accept", EXIT_USAGE)
    with _client(server, token) as client:
        body: dict[str, Any] = _request(client, "GET", "/api/v1/agreements")
        if not body.get("required"):
            if not _print(body, as_json):
                typer.echo("this server has no data-use agreement: nothing to accept")
            return
        if accept:
            chosen = version or body["version"]
            body = _request(client, "POST", "/api/v1/agreements", json={"version": chosen})
    if _print(body, as_json):
        return
    if not accept:
        typer.echo(str(body["text"]).rstrip("\n"))
        typer.echo("---")
    typer.echo(f"version {body['version']}")
    if body.get("accepted"):
        typer.echo(f"accepted on {body['accepted_at']}")
    else:
        typer.echo(f"not accepted yet: run `csawm agreement --accept` or open {body['url']}")


def select(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    undo: Annotated[bool, typer.Option("--undo", help="Unselect the run instead.")] = False,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Select a run for the final ranking of its sealed phase (--undo unselects)."""
    with _client(server, token) as client:
        body = _request(client, "DELETE" if undo else "POST", f"/api/v1/submissions/{submission_id}/select")
    if _print(body, as_json):
        return
    chosen = ", ".join(map(str, body["selected_ids"])) or "none"
    verb = "selected" if body["selected"] else "unselected"
    typer.echo(
        f"{verb} submission {body['submission_id']} in phase {body['phase']}; "
        f"selected now: {chosen} (at most {body['max_selected']})"
    )


def cancel(
    submission_id: Annotated[int, typer.Argument(help="Submission id.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run. Refunded while it has not reached the hidden images (queued or in preflight);
    once the hidden run started, the quota slot stays used (docs/run-policy.md)."""
    with _client(server, token) as client:
        body = _request(client, "POST", f"/api/v1/submissions/{submission_id}/cancel")
        if _print(body, as_json):
            return
        if body["status"] == "cancelled":
            sub = _request(client, "GET", f"/api/v1/submissions/{submission_id}")
            outcome = sub.get("outcome") or {}
            typer.echo(f"submission {submission_id} cancelled; quota: {outcome.get('charge', 'unknown')}")
        else:
            typer.echo(
                f"submission {submission_id} ({body['status']}): asked its worker to stop it; refunded "
                f"if it stops before the hidden run starts. Follow it with `csawm status {submission_id}`"
            )
