"""``regbench site`` and what it needs from the store: config ids on runs (MLflow's
Group by), each report build kept, the pages built from a real tiny store, the history of
verdicts, and bad input (one line, exit 2, nothing in the store changed)."""

from __future__ import annotations

import copy
import csv
import io
import json
import re

import pytest

from conftest import runs_of
from site_store import SiteStore, build_store, claims_json, snapshot


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SiteStore:
    return build_store(tmp_path_factory.mktemp("site_store"))


# -- config ids ---------------------------------------------------------------------------


def test_config_id_is_shared_by_seeds_and_differs_by_config(tiny, experiment):
    from regbench.tracking import CONFIG_ID_TAG, get_client, tracked_run

    ids = {}
    for seed, width in ((0, 32), (1, 32), (0, 64)):
        cfg = tiny(f"seed={seed}", f"model.width={width}")
        with tracked_run(experiment, f"mlp-w{width}-s{seed}", cfg) as run:
            ids[seed, width] = get_client().get_run(run.run_id).data.tags[CONFIG_ID_TAG]
    assert ids[0, 32] == ids[1, 32] and ids[0, 32] != ids[0, 64]
    assert re.fullmatch(r"mlp-w32 \([0-9a-f]{8}\)", ids[0, 32])
    assert ids[0, 64].startswith("mlp-w64 (")
    # where a run is filed and how it logs are not its configuration
    cfg = tiny("seed=5", "model.width=32", "logger.flush_every_s=0", "trainer.progress_bar=true")
    with tracked_run(f"{experiment}-b", "mlp-w32-s5", cfg) as run:
        assert get_client().get_run(run.run_id).data.tags[CONFIG_ID_TAG] == ids[0, 32]


def test_direct_runs_get_their_config_id_from_the_params_they_log(experiment):
    from regbench.tracking import CONFIG_ID_TAG, get_client, log_params, tracked_run

    client = get_client()
    with tracked_run(experiment, "grid") as parent:  # a parent: no seed, no config id
        pass
    ids = []
    for seed in (0, 1):
        with tracked_run(experiment, f"l2-s{seed}", parent_run_id=parent.run_id) as run:
            log_params(client, run.run_id, {"arm": "l2", "lam": "0.1", "seed": str(seed)})
        ids.append(client.get_run(run.run_id).data.tags[CONFIG_ID_TAG])
    with pytest.raises(RuntimeError), tracked_run(experiment, "l2-s2") as failed:
        log_params(client, failed.run_id, {"arm": "l2", "lam": "0.1", "seed": "2"})
        raise RuntimeError("diverged")
    failed_run = client.get_run(failed.run_id)
    assert failed_run.info.status == "FAILED"
    assert ids[0] == ids[1] == failed_run.data.tags[CONFIG_ID_TAG]
    assert ids[0].startswith("l2 (")
    assert CONFIG_ID_TAG not in client.get_run(parent.run_id).data.tags
    # a run without a config still records where it came from
    assert client.get_run(run.run_id).data.tags["git.commit"]


def test_a_reproductions_runs_group_by_config_id(store: SiteStore):
    with pytest.MonkeyPatch.context() as mp:
        store.env(mp)
        runs = [r for r in runs_of("reproduce-two_inputs-tiny") if r.data.params.get("seed")]
    from regbench.tracking import CONFIG_ID_TAG

    groups: dict[str, set] = {}
    for r in runs:
        groups.setdefault(r.data.tags[CONFIG_ID_TAG], set()).add(r.data.params["seed"])
    # four arms, each its three seeds
    assert sorted(g.split()[0] for g in groups) == ["dropout", "l1", "l2", "none"]
    assert all(seeds == {"0", "1", "2"} for seeds in groups.values())


# -- the site built from a real store -----------------------------------------------------


def test_each_report_build_is_kept_with_its_record(store: SiteStore):
    folder = next((store.mlruns / "artifacts" / "reproduce-two_inputs-tiny").glob("*/artifacts"))
    history = sorted((folder / "report" / "history").glob("*.json"))
    assert len(history) == 2  # reproduce, then report: two builds
    builds = [json.loads(p.read_text())["build"] for p in history]
    assert builds[0]["time"] < builds[1]["time"]
    assert all(re.fullmatch(r"[0-9a-f]{40}", b["commit"]) for b in builds)
    assert builds[0]["runs"] == {builds[0]["commit"]: 12}  # 4 arms x 3 seeds, this checkout
    assert (folder / "report" / "two_inputs.svg").stat().st_size > 10_000
    assert history[1].name.endswith(f"-{builds[1]['commit'][:8]}.json")


def test_index_lists_the_reproduction_with_counts_by_role(store: SiteStore):
    html = (store.site / "index.html").read_text()
    assert 'href="r/two_inputs-tiny/index.html"' in html
    data = claims_json(store)
    n = {role: {s: 0 for s in ("SUPPORTED", "REFUTED", "INCONCLUSIVE")} for role in
         ("finding", "folk", "check")}  # fmt: skip
    for c in data["claims"]:
        n[c["role"]][c.get("family_status") or c["status"]] += 1
    names = {"finding": "findings", "folk": "folk claims", "check": "checks"}
    row = html.split('href="r/two_inputs-tiny/index.html"')[1].split("</tr>")[0]
    shown = {
        m[0]: {"SUPPORTED": int(m[1]), "REFUTED": int(m[2]), "INCONCLUSIVE": int(m[3])}
        for m in re.findall(
            r'<span class="role">([a-z ]+)</span>\s*<b class="s">(\d+)</b>/'
            r'<b class="r">(\d+)</b>/<b class="i">(\d+)</b>',
            row,
        )
    }
    assert shown == {names[role]: c for role, c in n.items() if sum(c.values())}
    assert 'id="filter"' in html and "site.js" in html
    assert 'href="c/two_inputs-grid-' in html  # the comparison


def test_reproduction_page_has_claims_figures_csv_and_provenance(store: SiteStore):
    page = store.site / "r" / "two_inputs-tiny"
    html = (page / "index.html").read_text()
    data = claims_json(store)
    rows = re.findall(r'<tr id="claim-[^"]+" class="claim">.*?</tr>', html, re.S)
    assert len(rows) == len(data["claims"]) == 11
    for row, c in zip(rows, data["claims"], strict=True):
        status = c.get("family_status") or c["status"]
        assert f'class="badge {status.lower()}">{status}</span>' in row
        assert c["threshold_text"].replace("<", "&lt;") in row
    # the published values table of report.md and its figure, as SVG
    assert "closed form (population)" in html and '<img src="two_inputs.svg"' in html
    report = html.split('<h2 id="report">')[1]
    assert "<th>claim</th>" not in report  # report.md's claims table: the page has its own
    assert (page / "two_inputs.svg").read_bytes() == (
        store.reports / "two_inputs-tiny" / "two_inputs.svg"
    ).read_bytes()
    # per-seed values: one CSV row per value, the exact floats of claims.json
    table = list(csv.DictReader(io.StringIO((page / "values.csv").read_text())))
    assert len(table) == sum(len(c["values"]) for c in data["claims"]) == 33
    for c in data["claims"]:
        mine = [float(r["value"]) for r in table if r["claim"] == c["key"]]
        assert mine == c["values"]
        assert [r["index"] for r in table if r["claim"] == c["key"]] == ["0", "1", "2"]
    commit = data["build"]["commit"]
    assert f"git checkout {commit}" in html
    assert "uv run regbench reproduce two_inputs --scale tiny --seeds 3" in html
    assert "<th>torch threads per run</th>" in html and "<th>logical cores</th>" in html


def test_history_shows_each_build_and_merges_repeats(store: SiteStore):
    html = (store.site / "history.html").read_text()
    section = html.split('id="two_inputs-tiny"')[1]
    assert "(2 builds)" in section  # reproduce and report: same runs, same verdicts
    assert section.count('class="flip"') == 0


def test_history_table_marks_a_verdict_that_changed(store: SiteStore):
    from regbench.site.content import history_table
    from regbench.site.store import Build, Run

    data = claims_json(store)
    parent = Run("p", "grid", "1", "FINISHED", 0, 1, {}, {}, {})
    later = copy.deepcopy(data)
    later["build"] = {**data["build"], "time": "2099-01-01T00:00:00.000000Z",
                      "runs": {"f" * 40: 12}}  # fmt: skip
    flipped = later["claims"][5]  # the verdict the site shows: family-wise where there is one
    shown = "family_status" if flipped.get("family_status") else "status"
    flipped[shown] = "SUPPORTED" if flipped[shown] != "SUPPORTED" else "REFUTED"
    table = history_table([Build(parent, data, "a"), Build(parent, data, "b"),
                           Build(parent, later, "c")])  # fmt: skip
    assert [c["times"] for c in table["columns"]] == [2, 1]
    assert table["columns"][1]["runs"] == ["ffffffff"]
    assert table["flips"] == 1
    assert [r["key"] for r in table["rows"] if r["flips"]] == [flipped["key"]]


def test_comparison_page_shows_the_compare_report(store: SiteStore):
    (folder,) = (store.site / "c").iterdir()
    html = (folder / "index.html").read_text()
    assert "Paired per-seed difference from the baseline" in html
    assert '<img src="metrics_vs_setting.png"' in html and (folder / "summary.json").is_file()
    # the command compare recorded on the parent run (with a --baseline, it would be there)
    assert "Rebuild with <code>regbench compare two_inputs</code>" in html


def test_building_the_site_changes_nothing_in_the_store(store: SiteStore):
    assert store.before == store.after
    assert len(store.before["runs"]) == 1 + 12  # the parent and 4 arms x 3 seeds
    assert sum(k.startswith("artifacts/") for k in store.before) > 5


# -- bad input ----------------------------------------------------------------------------


def _site(argv, capsys) -> tuple[int, str, str]:
    from regbench.cli import main

    try:
        main(["site", *argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_out_that_cannot_take_the_site_is_one_line_exit_2(store: SiteStore, tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.MonkeyPatch.context() as mp:
        store.env(mp)
        cases = {
            str(a_file / "site"): "is not writable (Not a directory",
            str(a_file): "is a file; a folder is needed",
            str(theirs): "is a non-empty folder that regbench site did not write",
            str(store.mlruns / "site"): "is inside the MLflow store",
        }
        for out, message in cases.items():
            code, stdout, err = _site(["--out", out], capsys)
            assert code == 2 and message in err, err
            assert err.count("\n") == 1 and err.startswith(f"regbench site: --out={out} ")
    assert (theirs / "notes.txt").read_text() == "keep me"
    assert snapshot(store.mlruns) == store.before


def test_a_missing_store_is_not_created(tmp_path, capsys):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGBENCH_MLRUNS", str(tmp_path / "nothing"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        code, _, err = _site(["--out", str(tmp_path / "site")], capsys)
    assert code == 2 and err.startswith("regbench site: no MLflow store at ")
    assert err.count("\n") == 1 and not (tmp_path / "nothing").exists()


def test_an_empty_store_gets_a_page_that_says_so(tmp_path, capsys):
    from regbench.tracking import ensure_experiment, get_client

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGBENCH_MLRUNS", str(tmp_path / "mlruns"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        ensure_experiment(get_client(), "nothing-here")
        code, out, _ = _site(["--out", str(tmp_path / "site")], capsys)
        again, _, _ = _site(["--out", str(tmp_path / "site")], capsys)  # rebuilds its own
    assert code == again == 0 and out.count("\n") == 1
    assert "holds no reproduction reports or comparisons" in out
    assert "This store holds no reproduction reports" in (tmp_path / "site/index.html").read_text()


def test_failed_runs_are_listed_not_hidden(tmp_path, capsys):
    from regbench.report import REPRO_TAG
    from regbench.tracking import log_params, tracked_run

    tags = {REPRO_TAG: "two_inputs", "regbench.scale": "tiny", "sweep.role": "parent"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REGBENCH_MLRUNS", str(tmp_path / "mlruns"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        with tracked_run("reproduce-two_inputs-tiny", "two_inputs-grid", tags=tags) as parent:
            pass  # the grid's parent; its one child fails
        with (
            pytest.raises(FloatingPointError),
            tracked_run("reproduce-two_inputs-tiny", "l2-s0", parent_run_id=parent.run_id) as run,
        ):
            log_params(run.client, run.run_id, {"arm": "l2", "seed": "0"})
            raise FloatingPointError("loss is nan at step 3")
        before = snapshot(tmp_path / "mlruns")
        code, out, _ = _site(["--out", str(tmp_path / "site")], capsys)
        after = snapshot(tmp_path / "mlruns")
    html = (tmp_path / "site" / "index.html").read_text()
    assert code == 0 and "1 without a report" in out
    assert "Reproductions without a report" in html
    assert "FloatingPointError: loss is nan at step 3" in html and "1 FAILED" in html
    assert "regbench reproduce two_inputs --scale tiny" in html
    assert before == after


# -- the reports' markdown ----------------------------------------------------------------


def test_markdown_tables_keep_bars_inside_cells_and_stars_in_formulas():
    from regbench.site.markdown import split_row, to_html

    md = "| claim | statistic |\n|---|---|\n| a | max \\|w - w*\\| per seed |"
    assert split_row(md.splitlines()[2]) == ["a", "max |w - w*| per seed"]
    text = "w* and w* stay, *this* is emphasis\n\n![fig](x.png)\n\n![gone](y.png)"
    html = to_html(f"{md}\n\n{text}", {"x.png": "x.svg"}.get)
    assert "<td>max |w - w*| per seed</td>" in html
    assert "<p>w* and w* stay, <em>this</em> is emphasis</p>" in html
    assert '<figure><img src="x.svg" alt="fig"></figure>' in html and "y.png" not in html


def test_report_body_leaves_out_the_claims_section_in_either_layout():
    """One claims table under "## Claims: counts" (reports so far) or a count line, the
    findings' table and a "### Checks" table (reports split by role): either way the page
    shows its own claims table and keeps the rest of report.md."""
    from regbench.site.render import report_body

    head = "# x (tiny scale)\n\nThe claim in one line.\n\n"
    body = "Setup sentence.\n\n| arm | published |\n|---|---|\n| a | 1.0 |\n\n![f](f.png)\n"
    claims = "| claim | verdict |\n|---|---|\n| c1 | **SUPPORTED** |\n\n"
    checks = "| check | verdict |\n|---|---|\n| c2 | **SUPPORTED** |\n\n"
    layouts = [
        f"{head}## Claims: 1 SUPPORTED\n\n{claims}{body}",
        f"{head}## Claims\n\nFindings: 1 SUPPORTED.\n\n{claims}### Checks\n\n{checks}{body}",
    ]
    for md in layouts:
        html, used = report_body(md, "The claim in one line.", {"f.png": "f.svg"})
        assert html == (
            "<p>Setup sentence.</p>\n"
            '<div class="scroll"><table class="md"><thead><tr><th>arm</th><th>published</th>'
            "</tr></thead><tbody><tr><td>a</td><td>1.0</td></tr></tbody></table></div>\n"
            '<figure><img src="f.svg" alt="f"></figure>'
        )
        assert used == {"f.svg"}


def test_seeds_needed_says_when_its_power_is_family_wise():
    """The newcomer's walk: a finding's "seeds needed" read "3; 4 for 80% power" beside its
    own note "80% power at the observed effect: about 3 seeds" (the column took Holm's
    alpha/m number, the note the claim's own): the column now names its level."""
    from regbench.site.render import _needed

    own = {"kind": "mean", "seeds_required": 3, "seeds_80": 3}
    assert _needed(own) == "3; 3 for 80% power"
    assert _needed({**own, "seeds_80_family": 4}) == "3; 4 for 80% power family-wise (Holm)"
    assert _needed({"kind": "exact", "seeds_80": 3}) == "exact"


def test_compare_records_its_command_line_on_the_parent_run(store: SiteStore):
    from regbench.report.compare import COMMAND_TAG
    from regbench.tracking import get_client

    with pytest.MonkeyPatch.context() as mp:
        store.env(mp)
        client = get_client()
        tagged = [
            r
            for e in client.search_experiments()
            for r in client.search_runs([e.experiment_id])
            if COMMAND_TAG in r.data.tags
        ]
    assert [r.data.tags[COMMAND_TAG] for r in tagged] == ["regbench compare two_inputs"]


def test_a_reproduction_with_a_failed_run_lists_it_on_both_pages(tmp_path_factory, capsys):
    """A divergence-tolerant grid (bn_learning_rate) leaves FAILED runs beside its report:
    the index said '{{ r.failed }} failed runs' from a list and the build crashed
    (TypeError: '>' not supported between 'list' and 'int'), seen on a cpu-scale store."""
    from regbench.cli import main
    from regbench.tracking import get_client

    s = build_store(tmp_path_factory.mktemp("site_failed"))
    with pytest.MonkeyPatch.context() as mp:
        s.env(mp)
        client = get_client()
        exp = client.get_experiment_by_name("reproduce-two_inputs-tiny")
        runs = client.search_runs([exp.experiment_id])
        child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
        failed = client.create_run(
            exp.experiment_id,
            run_name="diverged-s9",
            tags={
                "mlflow.parentRunId": child.data.tags["mlflow.parentRunId"],
                "error": "train/loss became nan at epoch 0",
            },
        )
        client.set_terminated(failed.info.run_id, "FAILED")
        out = tmp_path_factory.mktemp("site_failed_out") / "site"
        main(["site", "--out", str(out)])
    index = (out / "index.html").read_text()
    assert '<div class="warn">1 failed run</div>' in index
    (page,) = (out / "r").glob("two_inputs-tiny*/index.html")
    html = page.read_text()
    assert "<b>1 run failed</b> in this store" in html
    assert "<code>diverged-s9</code> FAILED: train/loss became nan at epoch 0" in html
