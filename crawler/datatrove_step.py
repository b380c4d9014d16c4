"""A datatrove pipeline step that drops documents whose source is reserved for the purpose (issue 17).

Use it after datatrove's WARC reader or a JSONL/Parquet reader::

    from crawler.datatrove_step import OptOutFilter

    pipeline = [
        JsonlReader("s3://corpus/"),
        OptOutFilter(purpose="train-ai", cache="redis://cache:6379/0", exclusion_writer=JsonlWriter("excluded/")),
        JsonlWriter("kept/"),
    ]

Each document is decided by the same engine as ``optout check`` and ``optout filter``: the site-level policy of
its source URL's origin (robots.txt first, then the policy files under its rules, once per origin and task; with
``cache``, once per origin for all tasks, through the crawl's persistent policy store), and, when the document
still carries its HTML (``text`` starting like an HTML page) or its response headers (``metadata["http_headers"]``,
a name -> value or name -> [values] mapping), the page-level signals read from them. A document with neither is
decided at site level only, and its answer names the page-level protocols not evaluated. The decision and its
reasons are kept in ``metadata["optout"]``, on kept and dropped documents alike; a document without a usable
source URL is dropped (nothing can vouch for it). With ``registry``, every reservation of a dropped document is
recorded (``excluded_from_corpus``, evidence by SHA-256) by the crawl's recorder, one per task.

Tasks run on datatrove's own executors (local, Slurm): this is how filtering scales past one machine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from crawler.check import UsageError, validate_url
from crawler.warcfilter import judge, site_source, unjudged
from crawler.warcread import warc_time
from middlewares.engine import Fetched
from middlewares.policy import DEFAULT_AGENT, Policy


def _looks_like_html(text: str) -> bool:
    start = text[:1024].lstrip().lower()
    return start.startswith(("<!doctype", "<html", "<head")) or "<head" in start


def _headers(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        return {}
    found: dict[str, list[str]] = {}
    for name, values in value.items():
        items = values if isinstance(values, list) else [values]
        found.setdefault(str(name).strip().lower(), []).extend(str(v) for v in items)
    return found


class OptOutFilter(PipelineStep):  # type: ignore[misc]  # datatrove ships no type information
    name = "optout"
    type = "🛡 - FILTER"

    def __init__(
        self,
        purpose: str = "train-ai",
        agent: str = DEFAULT_AGENT,
        mode: str = "conservative",
        *,
        cache: str | None = None,
        timeout: float = 10.0,
        user_agent: str | None = None,
        url_key: str = "url",
        headers_key: str = "http_headers",
        exclusion_writer: Any = None,
        registry: str | None = None,
        operator: str = "localhost",
    ) -> None:
        super().__init__()
        self.policy = Policy.build(purpose=purpose, agent=agent, mode=mode)  # a bad setting fails here, at once
        self.cache = cache
        self.timeout = timeout
        self.user_agent = user_agent
        self.url_key = url_key
        self.headers_key = headers_key
        self.exclusion_writer = exclusion_writer
        self.registry = registry
        self.operator = operator

    def _open(self) -> tuple[Any, Any, Any]:
        from crawler.batch import SharedChecker, SyncStore
        from crawler.fetcher import RequestsFetcher
        from crawler.identity import user_agent_for

        store = None
        if self.cache:
            from middlewares.sitecache import open_store

            opened = open_store(self.cache)
            store = SyncStore(opened) if opened is not None else None
        fetcher = RequestsFetcher(self.user_agent or user_agent_for(self.policy.agent), timeout=self.timeout)
        return SharedChecker(self.policy, fetcher, store=store), fetcher, store

    def decide(self, checker: Any, doc: Document, recorder: Any = None) -> dict[str, Any]:
        """The answer for one document, in the check contract (plus ``site_policy`` or ``not_evaluated``); with a
        ``recorder``, each reservation of a dropped document is recorded (``excluded_from_corpus``)."""
        meta = doc.metadata
        raw = meta.get(self.url_key)
        try:
            url = validate_url(str(raw)) if raw else ""
        except UsageError as exc:
            url, problem = "", str(exc)
        else:
            problem = f"no source URL in metadata[{self.url_key!r}]"
        if not url:
            return unjudged(self.policy, raw, problem)
        headers = _headers(meta.get(self.headers_key))
        text = doc.text or ""
        if headers or _looks_like_html(text):
            fetched = Fetched(url=url, status=200, headers=headers, body=text.encode("utf-8", "replace"))
            fetched.final_url = url
            when = warc_time(str(meta.get("date") or ""))
            if when is not None:
                fetched.fetched_at = when
            decision, used = judge(checker, fetched)
            if recorder is not None and decision.reservations:
                recorder.record(decision, "excluded_from_corpus", site=used, response=fetched)
            answer: dict[str, Any] = decision.to_json()
            answer["site_policy"] = site_source(used)
            return answer
        found = checker.site_level(url)
        if recorder is not None and found.decision.reservations:
            recorder.record(found.decision, "excluded_from_corpus", site=found.site)
        answer = found.decision.to_json()
        answer["site_policy"] = site_source(found.site)
        if found.not_evaluated is not None:
            answer["not_evaluated"] = list(found.not_evaluated)
        return answer

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        checker, fetcher, store = self._open()
        writer = self.exclusion_writer
        recorder = None
        if self.registry:
            from middlewares.recording import Recorder

            recorder = Recorder(self.registry, agent=self.policy.agent, operator=self.operator)
        try:
            if writer is not None:
                writer.__enter__()
            for doc in data:
                self.stat_update("total")
                with self.track_time():
                    answer = self.decide(checker, doc, recorder)
                doc.metadata["optout"] = answer
                if answer["allowed"]:
                    self.stat_update("forwarded")
                    self.update_doc_stats(doc)
                    yield doc
                else:
                    self.stat_update("dropped")
                    for reservation in answer["reservations"]:
                        self.stat_update(f"dropped_{reservation['protocol']}")
                    if writer is not None:
                        writer.write(doc, rank)
        finally:
            if writer is not None:
                writer.__exit__(None, None, None)
            if recorder is not None:
                recorder.close()
                for problem in recorder.errors:
                    logger.error(f"optout: registry: {problem}")
                self.stat_update("registry_records", value=recorder.written)
            if store is not None:
                store.close()
            fetcher.close()
