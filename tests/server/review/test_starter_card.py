"""An unedited starter method card (the `csawm init` kit's, unchanged) is accepted with a warning at
`csawm submit` and a ``starter_method_card`` review flag for the maintainers (issue 23 item 8); an
edited card gets neither."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from srvtest import factories as f
from srvtest.app import make_settings
from srvtest.archives import write_archive
from srvtest.fakes import FakeRunner
from srvtest.live import live_server
from typer.testing import CliRunner

from server.app import create_app
from server.cli.init import PLAIN, TORCH, method_card
from server.cli.main import app as cli
from server.models import Role


def _submit(url: str, token: str, archive: Path, card: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli,
        ["submit", str(archive), "--name", archive.stem, "--method-card", str(card), "--wait"],
        env={"CSAWM_SERVER_URL": url, "CSAWM_TOKEN": token},
    )
    return result.exit_code, result.stdout, result.stderr


def test_the_kits_card_is_warned_about_and_flagged_and_an_edited_one_is_not(
    tmp_path: Path, sqlite_url: str, synthetic_benchmark: Path
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        benchmark_dir=synthetic_benchmark,
        bootstrap_resamples=100,
        poll_interval=0.2,
        quota_per_day=5,
    )
    app = create_app(settings, runner=FakeRunner(), embedded_worker=True, migrate_on_start=True)
    with live_server(app) as url:
        db = app.state.csawm.db
        f.team(db, "alpha")
        token = f.user(db, "a@x.org", team="alpha")
        maud = f.user(db, "m@x.org", role=Role.MAINTAINER)
        ids = {}
        for n, variant in enumerate((PLAIN, TORCH)):
            kit = tmp_path / f"kit-{n}.json"
            kit.write_text(json.dumps(method_card(variant), indent=2))
            write_archive(tmp_path / f"{kit.stem}.tar", seed=kit.stem)
            code, out, err = _submit(url, token, tmp_path / f"{kit.stem}.tar", kit)
            assert code == 0, err  # a warning, not a refusal
            assert "warning: --method-card" in err and "is the starter kit's card" in err
            assert "training_data, notes still hold the text `csawm init` wrote" in err
            ids[kit.stem] = int(out.split()[1])
        edited = tmp_path / "edited.json"
        edited.write_text(json.dumps({**method_card(PLAIN), "training_data": "CSAW-M public train split",
                                      "notes": "ResNet-18 on ranks, trained 30 epochs"}))  # fmt: skip
        write_archive(tmp_path / "edited.tar", seed="edited")
        code, out, err = _submit(url, token, tmp_path / "edited.tar", edited)
        assert code == 0 and "warning" not in err, err
        edited_id = int(out.split()[1])
        deadline = time.monotonic() + 30
        while True:
            flags = httpx.get(f"{url}/api/v1/admin/flags", headers=f.auth(maud)).json()["flags"]
            starter = [flag for flag in flags if flag["kind"] == "starter_method_card"]
            if len(starter) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(flag["runs"][0]["id"] for flag in starter) == sorted(ids.values())
        assert all(flag["evidence"] == {"unedited_fields": ["training_data", "notes"]} for flag in starter)
        assert all(flag["teams"] == ["alpha"] for flag in starter)
        assert edited_id not in {run["id"] for flag in flags for run in flag["runs"]}
