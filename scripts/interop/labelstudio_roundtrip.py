"""A real Label Studio server in the relabel loop: export -> import into Label Studio -> annotate -> export ->
``segval relabel import``.

Label Studio is installed into a throwaway venv (``.interop/venvs/labelstudio``, never a segval dependency). The
script:

1. writes a small generated package (``write_shapes_package``: videos of moving shapes), builds a relabel queue
   (``segval relabel queue``, model-free evidence, ``relabel/sam2=tiny_random`` proposals) and exports it
   (``segval relabel export format=labelstudio``: ``tasks.json`` with the current labels and the SAM 2 proposals
   as predictions, ``label_config.xml``);
2. starts ``label-studio start`` on 127.0.0.1 (a free port, its own data folder, analytics / Sentry / version
   check off) with local-file serving rooted at ``<package>/images`` and a user + legacy API token given on the
   command line (``--username --password --user-token --enable-legacy-api-token``);
3. creates a project with the labeling config, adds a local-files storage on ``<package>/images/<split>`` (what
   lets ``/data/local-files/?d=<split>/<file>`` URLs resolve; never synced) and imports the tasks through the REST
   API; checks every task and prediction was accepted and every image URL answers 200 with the package's bytes;
4. turns each prediction into a submitted annotation (``POST /api/tasks/<id>/annotations/`` with
   ``parent_prediction``; the SAM 2 proposal last, so it is the task's final answer where there is one) and
   edits one of them (``PATCH /api/annotations/<id>/``): one region changes class, a stroke is erased from
   another (its brush RLE decoded, two rows cleared and re-encoded with Label Studio's own SDK codec);
5. exports the project (``/api/projects/<id>/export?exportType=JSON``), runs ``segval relabel import
   format=labelstudio`` and checks the new version: every returned image holds exactly the regions of its final
   annotation (labels and pixels, decoded with the SDK's codec), the other images are unchanged.

The server is stopped by the script itself (its process group), on failure too; every wait is bounded.

    python scripts/interop/labelstudio_roundtrip.py [--out DIR] [--timeout 900]

Prints tasks and predictions accepted, images served, corrections imported vs made, the wall time, and ends with
``labelstudio_roundtrip: <figure> (goal ...) PASS|FAIL``; exit 0 on PASS, 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, ensure_venv, free_port, run_folder, segval, verdict  # noqa: E402

sys.path.insert(0, str(REPO / "src"))
LABEL_STUDIO = ["label-studio>=1.20,<2"]
SIDE = Path(__file__).resolve().parent / "_labelstudio_side.py"


class LabelStudio:
    """``label-studio start`` on 127.0.0.1 in its own process group (a context manager: stopped on exit)."""

    def __init__(self, venv_python: Path, data_dir: Path, document_root: Path, log: Path, timeout: float) -> None:
        self.bin = venv_python.parent / "label-studio"
        self.data_dir, self.document_root, self.log, self.timeout = data_dir, document_root, log, timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LabelStudio:
        env = {**os.environ, "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
               "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir), "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
               "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "DJANGO_DB": "sqlite"}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.bin), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
                 "--data-dir", str(self.data_dir), "--username", "annotator@segval.local",
                 f"--password={secrets.token_hex(12)}", f"--user-token={self.token}", "--enable-legacy-api-token",
                 "--log-level", "WARNING"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"label-studio exited with {self.proc.returncode} while starting; see {self.log}")
            try:
                self.api("GET", "/api/current-user/whoami")
                return
            except (OSError, RuntimeError):
                time.sleep(2)
        raise TimeoutError(f"label-studio did not answer within {self.timeout:.0f} s; see {self.log}")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 120) -> tuple[int, bytes]:
        """One request to the server (loopback only); (status, body)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Authorization": f"Token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self.request(method, path, body)
        if status >= 400:
            raise RuntimeError(f"{method} {path} -> HTTP {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


def side(py: Path, cmd: str, payload: Any, out: Path) -> Path:
    """Run ``_labelstudio_side.py cmd`` in the Label Studio venv on ``payload`` (JSON); the output path."""
    src = out.with_suffix(".in.json")
    src.write_text(json.dumps(payload))
    proc = subprocess.run([str(py), str(SIDE), cmd, str(src), str(out)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"label studio SDK {cmd} failed:\n{proc.stderr[-2000:]}")
    return out


def build_export(out: Path, log: Path) -> tuple[Path, Path]:
    """Package -> queue with SAM 2 (random-init) proposals -> Label Studio export; (package, export folder)."""
    from segval.demo.shapes import write_shapes_package

    pkg = write_shapes_package(out / "releases" / "1.0.0", images={"train": 8, "val": 2}, size=(64, 80),
                               frames_per_video=4)
    segval("relabel", "queue", "data=package", f"data.root={pkg}", "relabel.budget=4", "relabel/sam2=tiny_random",
           f"relabel.cache_dir={out / 'sam2_cache'}", "relabel.progress=false", f"hydra.run.dir={out / 'queue'}",
           cwd=out, log=log)
    segval("relabel", "export", f"queue={out / 'queue'}", "format=labelstudio", "data=package", f"data.root={pkg}",
           "progress=false", f"hydra.run.dir={out / 'export'}", cwd=out, log=log)
    return pkg, out / "export" / "labelstudio"


def load_project(ls: LabelStudio, export: Path, pkg: Path, split: str) -> tuple[int, dict]:
    """Project + local storage + task import; (project id, figures)."""
    tasks = json.loads((export / "tasks.json").read_text())
    project = ls.api("POST", "/api/projects/", {"title": "segval relabel round trip",
                                                "label_config": (export / "label_config.xml").read_text()})
    pid = project["id"]
    ls.api("POST", "/api/storages/localfiles/", {"project": pid, "title": "segval package images",
                                                 "path": str(pkg / "images" / split), "use_blob_urls": True})
    res = ls.api("POST", f"/api/projects/{pid}/import", tasks)
    return pid, {"tasks_sent": len(tasks), "predictions_sent": sum(len(t["predictions"]) for t in tasks),
                 "regions_sent": sum(len(p["result"]) for t in tasks for p in t["predictions"]),
                 "import_answer": {k: res.get(k) for k in ("task_count", "prediction_count", "annotation_count")}}


def stored_tasks(ls: LabelStudio, pid: int) -> list[dict]:
    page = ls.api("GET", f"/api/tasks/?project={pid}&page_size=1000&fields=all")
    tasks = page["tasks"] if isinstance(page, dict) else page
    for t in tasks:
        if "predictions" not in t or (t["predictions"] and not isinstance(t["predictions"][0], dict)):
            t["predictions"] = ls.api("GET", f"/api/predictions/?task={t['id']}")
    return sorted(tasks, key=lambda t: t["id"])


def check_accepted(ls: LabelStudio, pid: int, export: Path, pkg: Path) -> tuple[list[dict], dict, list[str]]:
    """Every task and prediction stored as sent, every image served with the package's bytes."""
    sent = {t["data"]["image_id"]: t for t in json.loads((export / "tasks.json").read_text())}
    tasks = stored_tasks(ls, pid)
    problems, preds_ok, regions_ok, images_ok = [], 0, 0, 0
    for t in tasks:
        mine = sent.get(t["data"].get("image_id"))
        if mine is None:
            problems.append(f"task {t['id']} has an image id not sent: {t['data'].get('image_id')}")
            continue
        got = {p["model_version"]: p["result"] for p in t["predictions"]}
        for p in mine["predictions"]:
            rs = got.get(p["model_version"])
            if rs is None:
                problems.append(f"task {t['id']}: prediction {p['model_version'][:40]!r} not stored")
                continue
            preds_ok += 1
            same = [r for r in rs if any(r["value"] == q["value"] for q in p["result"])]
            regions_ok += len(same)
            if len(same) != len(p["result"]):
                problems.append(f"task {t['id']}: {len(p['result']) - len(same)} regions of {p['model_version'][:40]!r} "
                                "not stored as sent")
        status, body = ls.request("GET", t["data"]["image"])
        want = (pkg / "images" / t["data"]["split"] / t["data"]["file_name"]).read_bytes()
        if status == 200 and body == want:
            images_ok += 1
        else:
            problems.append(f"task {t['id']}: {t['data']['image']} -> HTTP {status}, "
                            f"{'same' if body == want else 'other'} bytes")
    if len(tasks) != len(sent):
        problems.append(f"{len(tasks)} tasks stored, {len(sent)} sent")
    return tasks, {"tasks": len(tasks), "predictions": preds_ok, "regions": regions_ok, "images": images_ok}, problems


def annotate(ls: LabelStudio, tasks: list[dict]) -> dict[int, dict]:
    """Each prediction -> a submitted annotation (current labels first, the proposal last); ``{task id: the last
    annotation}``."""
    last = {}
    for t in tasks:
        preds = sorted(t["predictions"], key=lambda p: p["model_version"] != "segval-current-label")
        for p in preds:
            last[t["id"]] = ls.api("POST", f"/api/tasks/{t['id']}/annotations/",
                                   {"result": p["result"], "parent_prediction": p["id"], "was_cancelled": False,
                                    "ground_truth": False, "lead_time": 1.0})
    return last


def edit_one(ls: LabelStudio, py: Path, last: dict[int, dict], labels: list[str], work: Path) -> dict:
    """The annotator's edit of one final annotation: the first brush region gets another class, two rows through
    the middle of the largest region are erased (Label Studio's SDK codec). What was done."""
    tid = max(last, key=lambda k: (len(last[k]["result"]), -k))
    ann = last[tid]
    result = json.loads(json.dumps(ann["result"]))
    brushes = [r for r in result if r["type"] == "brushlabels"]
    first = brushes[0]
    old = first["value"]["brushlabels"][0]
    first["value"]["brushlabels"] = [next(lb for lb in labels if lb != old)]
    masks = np.load(side(py, "decode", [{"key": f"r{k}", "rle": r["value"]["rle"], "height": r["original_height"],
                                          "width": r["original_width"]} for k, r in enumerate(brushes)],
                         work / "edit_decode.npz"))
    k = max(range(len(brushes)), key=lambda i: int(masks[f"r{i}"].sum()))
    rows = np.flatnonzero(masks[f"r{k}"].any(1))
    mid = int(rows[len(rows) // 2])
    target = brushes[k]
    er = json.loads(side(py, "erase", {"rle": target["value"]["rle"], "height": target["original_height"],
                                       "width": target["original_width"], "rows": [mid, mid + 2]},
                         work / "edit_erase.json").read_text())
    target["value"]["rle"] = er["rle"]
    last[tid] = ls.api("PATCH", f"/api/annotations/{ann['id']}/", {"result": result})
    return {"task": tid, "annotation": ann["id"], "relabelled": f"{old} -> {first['value']['brushlabels'][0]}",
            "erased_rows": [mid, mid + 2], "erased_pixels": er["erased_pixels"], "same_region": k == 0}


def expected_regions(py: Path, tasks: list[dict], last: dict[int, dict], work: Path) -> dict[int, list]:
    """``{image id: [(label, bool[H, W])]}`` of each task's final annotation, decoded with the SDK's codec (empty
    masks left out, as nothing of them can be imported)."""
    items, where = [], []
    for t in tasks:
        for k, r in enumerate(last[t["id"]]["result"]):
            if r["type"] == "brushlabels":
                items.append({"key": f"t{t['id']}_{k}", "rle": r["value"]["rle"], "height": r["original_height"],
                              "width": r["original_width"]})
                where.append((t["data"]["image_id"], r["value"]["brushlabels"][0], items[-1]["key"]))
    masks = np.load(side(py, "decode", items, work / "expected.npz"))
    out: dict[int, list] = {int(t["data"]["image_id"]): [] for t in tasks}
    for image_id, label, key in where:
        if masks[key].any():
            out[int(image_id)].append((label, masks[key]))
    return out


def regions_of(root: Path, split: str) -> dict[int, list]:
    from segval.dataset.package import DatasetPackage

    pkg = DatasetPackage.open(root)
    sd, tax = pkg.split(split), pkg.taxonomy
    names = {c.id: c.name for c in tax.categories}
    return {rec.id: [(names[i.category_id], i.mask) for i in sd.instances(rec)
                     if tax.background_id is None or i.category_id != tax.background_id] for rec in sd.images}


def same_regions(a: list, b: list) -> bool:
    key = lambda r: (r[0], r[1].tobytes())  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


def check_import(old_root: Path, new_root: Path, expected: dict[int, list], edit: dict, edited_image: int,
                 split: str) -> tuple[dict, list[str]]:
    """Each returned image holds exactly its final annotation; the others are unchanged."""
    old, new = regions_of(old_root, split), regions_of(new_root, split)
    problems = []
    made = sorted(i for i, regs in expected.items() if not same_regions(regs, old[i]))
    imported = sorted(i for i in new if not same_regions(new[i], old[i]))
    for i, regs in expected.items():
        if not same_regions(new[i], regs):
            problems.append(f"image {i}: the new version holds {sorted(r[0] for r in new[i])}, the final annotation "
                            f"{sorted(r[0] for r in regs)} (or other pixels)")
    for i in set(old) - set(expected):
        if not same_regions(new[i], old[i]):
            problems.append(f"image {i} was not returned but changed")
    label_new = edit["relabelled"].split(" -> ")[1]
    if not any(lb == label_new for lb, _ in new[edited_image]):
        problems.append(f"the edited class ({edit['relabelled']}) is not in image {edited_image} of the new version")
    return {"images_corrected_made": len(made), "images_corrected_imported": len(imported),
            "edited_image_matches": same_regions(new[edited_image], expected[edited_image])}, problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="run folder (default outputs/interop/labelstudio/<date>_<time>)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds the server may take to start")
    args = ap.parse_args()
    t0 = time.monotonic()
    out = run_folder("labelstudio", args.out)
    log, split = out / "commands.log", "train"
    print(f"run folder: {out}", flush=True)
    problems: list[str] = []
    figure = "did not finish"
    try:
        py = ensure_venv("labelstudio", LABEL_STUDIO)
        version = subprocess.run([str(py), "-c", "import label_studio; print(label_studio.__version__)"],
                                 capture_output=True, text=True).stdout.strip()
        print(f"Label Studio {version} ({py})", flush=True)
        pkg, export = build_export(out, log)
        t_server = time.monotonic()
        with LabelStudio(py, out / "labelstudio_data", pkg / "images", out / "labelstudio_server.log",
                         args.timeout) as ls:
            print(f"server up on {ls.url} in {time.monotonic() - t_server:.1f} s", flush=True)
            pid, sent = load_project(ls, export, pkg, split)
            tasks, acc, p1 = check_accepted(ls, pid, export, pkg)
            problems += p1
            print(f"tasks accepted {acc['tasks']} / {sent['tasks_sent']}, predictions accepted {acc['predictions']} / "
                  f"{sent['predictions_sent']} ({acc['regions']} / {sent['regions_sent']} brush regions as sent), "
                  f"images served {acc['images']} / {acc['tasks']} (import answer {sent['import_answer']})", flush=True)
            last = annotate(ls, tasks)
            edit = edit_one(ls, py, last, _labels(export), out)
            print(f"annotations submitted {sum(len(t['predictions']) for t in tasks)} (one per prediction); edited "
                  f"annotation {edit['annotation']} of task {edit['task']}: {edit['relabelled']}, "
                  f"{edit['erased_pixels']} px erased", flush=True)
            status, raw = ls.request("GET", f"/api/projects/{pid}/export?exportType=JSON", timeout=300)
            if status != 200:
                raise RuntimeError(f"project export -> HTTP {status}: {raw[:300]!r}")
            exported = out / "labelstudio_export.json"
            exported.write_bytes(raw)
            expected = expected_regions(py, tasks, last, out)
        print(f"server stopped; project exported: {exported} ({len(json.loads(raw))} tasks)", flush=True)
        segval("relabel", "import", "format=labelstudio", f"file={exported}", "data=package", f"data.root={pkg}",
               f"hydra.run.dir={out / 'import'}", cwd=out, log=log)
        summary = json.loads((out / "import" / "import_summary.json").read_text())
        edited_image = next(int(t["data"]["image_id"]) for t in tasks if t["id"] == edit["task"])
        res, p2 = check_import(pkg, Path(summary["path"]), expected, edit, edited_image, split)
        problems += p2
        print(f"segval relabel import: new version {summary['version']}: {len(summary['corrected'])} corrected, "
              f"{len(summary['added'])} added, {len(summary['deprecated'])} deprecated annotations; images corrected "
              f"imported {res['images_corrected_imported']} / made {res['images_corrected_made']}; the edited image "
              f"{'matches' if res['edited_image_matches'] else 'does NOT match'} its annotation", flush=True)
        figure = (f"tasks {acc['tasks']}/{sent['tasks_sent']}, predictions {acc['predictions']}/"
                  f"{sent['predictions_sent']}, images {acc['images']}/{acc['tasks']}, corrections imported "
                  f"{res['images_corrected_imported']}/{res['images_corrected_made']}")
    except Exception as err:  # noqa: BLE001 - every failure ends in the FAIL line
        problems.append(f"{type(err).__name__}: {err}")
    for p in problems:
        print(f"  problem: {p}")
    print(f"wall time {time.monotonic() - t0:.1f} s; log: {log}")
    ok = not problems
    verdict("labelstudio_roundtrip", f"{figure}, {len(problems)} problems", "all accepted, all imported", ok)
    return 0 if ok else 1


def _labels(export: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring((export / "label_config.xml").read_text())
    return [e.get("value") for e in root.find("BrushLabels")]


if __name__ == "__main__":
    sys.exit(main())
