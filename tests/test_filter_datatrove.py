"""The datatrove step of issue 17 (crawler/datatrove_step.py): datatrove's local executor, 2 tasks, a loopback
fixture web; the persistent policy cache makes the two tasks ask each origin's files once in total."""

from __future__ import annotations

import gzip
import json

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page

pytest.importorskip("datatrove")
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from crawler.datatrove_step import OptOutFilter

TEXT = "text/plain"


def read_docs(folder) -> dict[str, dict]:
    docs = {}
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            for line in f:
                doc = json.loads(line)
                docs[doc["id"]] = doc
    return docs


def test_datatrove_step_two_tasks(tmp_path):
    with FixtureWeb() as web:
        o = web.site("open", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT)})
        t = web.site(
            "tdm",
            {
                "/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT),
                "/.well-known/tdmrep.json": Route(
                    body='[{"location": "/reserved/*", "tdm-reservation": 1}]', content_type="application/json"
                ),
            },
        )
        d = web.site("deny", {"/robots.txt": Route(body="User-agent: OptOutBot\nDisallow: /private\n")})
        docs = [
            # (id, url, text, extra metadata, allowed)
            ("plain-text", f"{o}/a", "Some extracted text.", {}, True),
            ("html-noai", f"{o}/b", page("b", head="<meta name='robots' content='noai'>"), {}, False),
            ("header-noai", f"{o}/c", "text", {"http_headers": {"X-Robots-Tag": "noai"}}, False),
            ("tdm-site", f"{t}/reserved/x", "text", {}, False),
            ("tdm-free", f"{t}/free/y", page("y"), {}, True),
            ("robots-deny", f"{d}/private/z", "text", {}, False),
            ("robots-ok", f"{d}/public", "text", {}, True),
            ("no-url", "", "text", {}, False),
        ]
        inputs = tmp_path / "in"
        inputs.mkdir()
        for task in range(2):  # every origin in both tasks' files
            with (inputs / f"part{task}.jsonl").open("w") as f:
                for doc_id, url, text, extra, _ in docs:
                    f.write(json.dumps({"id": f"{doc_id}-{task}", "text": text, "url": url, **extra}) + "\n")
        cache = f"sqlite:///{tmp_path / 'policy-cache.db'}"
        registry = f"sqlite:///{tmp_path / 'registry.db'}"
        pipeline = [
            JsonlReader(str(inputs)),
            OptOutFilter(
                cache=cache,
                timeout=3,
                exclusion_writer=JsonlWriter(str(tmp_path / "excluded")),
                registry=registry,
                operator="test-lab",
            ),
            JsonlWriter(str(tmp_path / "kept")),
        ]
        LocalPipelineExecutor(pipeline, tasks=2, workers=1, logging_dir=str(tmp_path / "logs")).run()

        kept, excluded = read_docs(tmp_path / "kept"), read_docs(tmp_path / "excluded")
        expected_kept = {f"{i}-{task}" for i, _, _, _, ok in docs if ok for task in range(2)}
        assert set(kept) == expected_kept
        assert set(excluded) == {f"{i}-{task}" for i, *_ in docs for task in range(2)} - expected_kept
        protocols = {k: {r["protocol"] for r in v["metadata"]["optout"]["reservations"]} for k, v in excluded.items()}
        assert protocols["html-noai-0"] == {"robots-tag"}
        assert protocols["header-noai-1"] == {"robots-tag"}
        assert protocols["tdm-site-0"] == {"tdmrep"}
        assert protocols["robots-deny-1"] == {"robots"}
        assert "no source URL" in excluded["no-url-0"]["metadata"]["optout"]["errors"][0]
        assert "tdmrep:html-meta" in kept["plain-text-0"]["metadata"]["optout"]["not_evaluated"]
        assert kept["tdm-free-1"]["metadata"]["optout"]["site_policy"]["source"] == "live"

        # Two tasks, one shared cache: each origin's robots.txt and policy files asked once in total, robots first.
        for name in ("open", "tdm", "deny"):
            paths = [h.path for h in web.hits(name)]
            assert paths[0] == "/robots.txt", (name, paths)
            assert len(paths) == len(set(paths)), (name, paths)
            assert set(paths) <= {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}, (name, paths)

        from optout_registry import Registry

        with Registry.open(registry, create=False) as reg:
            recorded = [e.record for e in reg.records()]
        reserved = {k for k, v in excluded.items() if v["metadata"]["optout"]["reservations"]}
        assert len(recorded) == len(reserved) == 8  # 4 documents with one reservation each, in 2 tasks
        assert {r["decision"] for r in recorded} == {"excluded_from_corpus"}
        assert all(r["evidence"]["sha256"] for r in recorded)
