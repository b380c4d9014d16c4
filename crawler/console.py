"""What a crawl shows on the console: a live line of counts while it runs and the summary at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.outfiles import DECISIONS, ITEMS, REPORT, SUMMARY

if TYPE_CHECKING:
    from crawler.runfiles import RunFiles


# -- on the console ------------------------------------------------------------------------------------------


class ConsoleProgress:
    """A live line of counts (rich) while the crawl runs: pages, origins, honoured opt-outs by protocol, rate.
    On a terminal only; elsewhere (CI logs, pipes) the summary at the end says it all."""

    def __init__(self, console: Any) -> None:
        from rich.live import Live as RichLive

        self.console = console
        self.live = RichLive(console=console, refresh_per_second=4, transient=True) if console.is_terminal else None
        if self.live is not None:
            self.live.start()

    def __call__(self, files: RunFiles, stats: dict[str, Any]) -> None:
        if self.live is None:
            return
        from rich.text import Text

        live = files.live
        elapsed = max(0.001, time.time() - live.started)
        responses = stats.get("response_received_count", 0)
        line = Text()
        line.append(f"{live.stored:,} stored", style="green")
        line.append(f" · {live.refused:,} refused", style="red")
        line.append(f" · {live.failed:,} failed · {len(live.origins):,} origins · {responses / elapsed:,.1f} pages/s")
        if live.honoured:
            line.append("\nhonoured: " + ", ".join(f"{p} {n:,}" for p, n in live.honoured.most_common()))
        self.live.update(line)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def print_summary(console: Any, out: Path, summary: dict[str, Any]) -> None:
    from rich.table import Table

    pages = summary["pages"]
    honoured = summary["honoured"]
    reg = summary["registry"]
    console.print(
        f"[bold]{pages['stored']:,}[/] pages stored, [bold]{pages['refused']:,}[/] URLs refused "
        f"({pages['not_fetched']:,} never fetched, {pages['fetched_not_stored']:,} fetched but not stored), "
        f"{pages['http_errors'] + pages['errors']:,} failed; {summary['origins']:,} origins; "
        f"{summary['elapsed_seconds']:.1f}s, {summary['pages_per_second']:,.1f} responses/s"
    )
    if honoured["by_protocol"]:
        table = Table(title="Opt-outs honoured", title_justify="left")
        table.add_column("protocol")
        table.add_column("count", justify="right")
        for protocol, count in honoured["by_protocol"].items():
            table.add_row(protocol, f"{count:,}")
        console.print(table)
    if reg.get("url"):
        console.print(
            f"registry: {reg.get('records', 0):,} records for this crawl, signed tree size {reg.get('tree_size', 0):,}"
            + (f" [red]({reg['error']})[/]" if reg.get("error") else "")
        )
    for name in (ITEMS, DECISIONS, SUMMARY, REPORT):
        console.print(f"  {name:<16} {out / name}")
    if (reg.get("url") or "").startswith("sqlite:///"):
        console.print(f"  {'registry':<16} {reg['url'][len('sqlite:///') :]}")
