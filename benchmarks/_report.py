"""Summaries, the text table, the targets, and the JSON, Markdown and PNG outputs."""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _workers, _zoo
from ._contenders import LOOP_SEPARATOR, split_name
from ._scenarios import BASELINE, SCENARIOS

__all__ = [
    "evaluate_targets",
    "render_tables",
    "summarize",
    "write_chart",
    "write_json",
    "write_markdown",
]

MICRO_HEADLINE = "sdk: headers + status + decode_lead (x-ratelimit-* present)"
"""The micro case the (e) target is judged on: the SDK's whole per-answer path, worst case."""

FLAT_TOLERANCE = 0.10
"""Peak RSS counts as flat when the largest run's exceeds the 100k run's by less than this."""


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _good(runs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [run for run in runs if not run.get("crashed")]


def summarize_contender(runs: Sequence[Mapping[str, Any]], scenario: str) -> dict[str, Any]:
    """Median, min and max leads/s and the rest of one contender's runs in one scenario."""
    spec = SCENARIOS[scenario]
    good = _good(runs)
    rates = [run["leads_per_s"] for run in good]
    summary: dict[str, Any] = {
        "runs": len(runs),
        "passed": sum(1 for run in runs if run.get("passed")),
        "intact": sum(1 for run in runs if run.get("intact")),
        "failed_ids": sum(run.get("failed", 0) for run in good),
        "n": max((run["n"] for run in runs), default=0),
        "median": _median(rates),
        "min": min(rates, default=None),
        "max": max(rates, default=None),
        "peak_rss_mb": max((run["peak_rss_mb"] for run in good), default=None),
        "cpu_us_per_lead": _median([run["cpu_us_per_lead"] for run in good]),
        "gc_collections": _median([run["gc_collections"] for run in good]),
        "server_util": _median([run["server_util"] for run in good if run.get("server_util")]),
        "errors": [e for run in runs for e in run.get("errors", [])][:3],
    }
    if spec.kind == "ratelimit" and spec.rate_limit is not None:
        per_second = spec.rate_limit / spec.rate_window
        goodput = [run["ok"] / (run["elapsed"] * per_second) for run in good]
        corrected = [run["ok"] / ((run["elapsed"] + spec.rate_window) * per_second) for run in good]
        shares = [run["rate_limited"] / run["requests"] for run in good if run["requests"]]
        summary.update(
            goodput=_median(goodput),
            goodput_min=min(goodput, default=None),
            goodput_max=max(goodput, default=None),
            goodput_corrected=_median(corrected),
            goodput_corrected_min=min(corrected, default=None),
            goodput_corrected_max=max(corrected, default=None),
            share_429=_median(shares),
            share_429_max=max(shares, default=None),
            requests=_median([run["requests"] for run in good]),
        )
    return summary


def baseline_for(contender: str) -> str:
    """The contender ``contender`` is compared with: raw aiohttp on the same event loop."""
    loop = split_name(contender)[1]
    return BASELINE if loop == split_name(BASELINE)[1] else f"{BASELINE}{LOOP_SEPARATOR}{loop}"


def summarize(scenario: str, runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-contender summaries of one scenario, with ratios to the baseline's median.

    A contender on another event loop (``sdk@uvloop``) is compared with the baseline on that
    loop (``aiohttp@uvloop``), so each loop's column reads as the SDK's cost over raw aiohttp.
    """
    spec = SCENARIOS[scenario]
    if spec.kind == "memory":
        return {
            str(run["n"]): {
                "contender": run["contender"],
                "n": run["n"],
                "passed": bool(run.get("passed")),
                "peak_rss_mb": run.get("peak_rss_mb"),
                "start_rss_mb": run.get("start_rss_mb"),
                "leads_per_s": run.get("leads_per_s"),
                "elapsed": run.get("elapsed"),
            }
            for run in runs
        }
    by_contender: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_contender.setdefault(run["contender"], []).append(run)
    summary = {name: summarize_contender(rs, scenario) for name, rs in by_contender.items()}
    for name, entry in summary.items():
        base = summary.get(baseline_for(name), {}).get("median")
        median = entry["median"]
        entry["ratio"] = median / base if median is not None and base else None
    return summary


# --- targets ---------------------------------------------------------------------------------


def _target(name: str, wanted: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"target": name, "wanted": wanted, "measured": measured, "met": met}


def evaluate_targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each of issue 5's targets against what this run measured (``met`` is None if not run)."""
    scenarios = results.get("scenarios", {})
    targets = []
    a = scenarios.get("a", {}).get("summary", {})
    if "sdk" in a and BASELINE in a:
        ratio = a["sdk"]["ratio"]
        httpx = a.get("httpx", {}).get("median")
        beats = httpx is None or (a["sdk"]["median"] or 0) > httpx
        targets.append(
            _target(
                "(a) get_leads vs raw aiohttp, and faster than httpx",
                ">= 0.90x and > httpx",
                f"{_fmt_ratio(ratio)}; httpx {_fmt_rate(httpx)} leads/s",
                ratio is not None and ratio >= 0.90 and beats,
            )
        )
    uvloop_sdk = f"sdk{LOOP_SEPARATOR}uvloop"
    if uvloop_sdk in a and baseline_for(uvloop_sdk) in a:
        ratio = a[uvloop_sdk]["ratio"]
        targets.append(
            _target(
                "(a) get_leads vs raw aiohttp, both on uvloop",
                ">= 0.90x",
                f"{_fmt_ratio(ratio)}; {_fmt_rate(a[uvloop_sdk]['median'])} leads/s",
                ratio is not None and ratio >= 0.90,
            )
        )
    b = scenarios.get("b", {}).get("summary", {})
    if "sdk" in b and BASELINE in b:
        ratio = b["sdk"]["ratio"]
        targets.append(
            _target(
                "(b) get_leads vs raw aiohttp, 20 ms latency",
                ">= 0.97x",
                _fmt_ratio(ratio),
                ratio is not None and ratio >= 0.97,
            )
        )
    for key in ("c-retry-after", "c-bare"):
        c = scenarios.get(key, {}).get("summary", {})
        sdk = c.get("sdk")
        if not sdk:
            continue
        good, corrected, share = sdk["goodput"], sdk["goodput_corrected"], sdk["share_429"]
        met = None
        if corrected is not None and share is not None:
            met = corrected >= 0.95 and share <= 0.02
        targets.append(
            _target(
                f"({key}) goodput and 429 share",
                ">= 95% of the limit, 429s <= 2%",
                f"goodput {_fmt_pct(corrected)} window-corrected ({_fmt_pct(good)} raw), "
                f"429s {_fmt_pct(share)}",
                met,
            )
        )
    d = scenarios.get("d", {}).get("summary", {})
    if d:
        sizes = sorted(d.values(), key=lambda entry: entry["n"])
        peaks = [entry["peak_rss_mb"] for entry in sizes if entry["peak_rss_mb"] is not None]
        largest = sizes[-1]
        smaller = [entry for entry in sizes if entry["n"] < largest["n"]]
        ref = next((entry for entry in smaller if entry["n"] == 100_000), None)
        ref = ref or (smaller[-1] if smaller else largest)
        growth = None
        if ref is not largest and ref["peak_rss_mb"] and largest["peak_rss_mb"]:
            growth = largest["peak_rss_mb"] / ref["peak_rss_mb"] - 1
        met = bool(peaks) and max(peaks) < 100 and (growth is None or growth < FLAT_TOLERANCE)
        targets.append(
            _target(
                "(d) iter_leads peak RSS",
                "< 100 MB, flat from 100k to 1M ids",
                ", ".join(f"{e['n']:,} ids: {_fmt_mb(e['peak_rss_mb'])}" for e in sizes)
                + (
                    ""
                    if growth is None
                    else f" ({growth:+.1%} from {ref['n']:,} to {largest['n']:,})"
                ),
                met,
            )
        )
    zoo = scenarios.get("z", {}).get("summary", {})
    judged = [row for row in zoo.get("rows", ()) if _zoo.JUDGED in row["contenders"]]
    if judged:
        worst = judged[0]
        clean = sum(1 for row in judged if not row["flags"])
        goodput = worst["contenders"][_zoo.JUDGED]["goodput"]
        targets.append(
            _target(
                "(z) limiter zoo: every row, sdk told nothing",
                f">= {_zoo.TARGET_STATED:.0%} of the limit ({_zoo.TARGET_BARE:.0%} bare), "
                f"<= {_zoo.MAX_GAP_TO_PLAIN * 100:.0f} pts below {_zoo.PLAIN}, 429s <= "
                f"{_zoo.MAX_429_STATED:.0%} ({_zoo.MAX_429_BARE:.0%} bare), no id lost",
                f"{clean}/{len(judged)} rows clean; worst {worst['row']}: goodput "
                f"{_fmt_pct(goodput)} (target {_fmt_pct(worst['target'])})"
                + (f", {'; '.join(worst['flags'])}" if worst["flags"] else ""),
                clean == len(judged),
            )
        )
    workers = scenarios.get("w", {}).get("summary")
    if workers:
        targets += [_target(*found) for found in _workers.targets(workers)]
    micro = results.get("micro", {}).get("cases", {})
    if MICRO_HEADLINE in micro:
        value = micro[MICRO_HEADLINE]["median_us"]
        targets.append(
            _target(
                "(e) classify + parse + structure per lead",
                "<= 15 us",
                f"{value:.1f} us",
                value <= 15,
            )
        )
    return targets


# --- text ------------------------------------------------------------------------------------


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _fmt_mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} MB"


def _fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return lines
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return lines


def _check_cell(entry: Mapping[str, Any]) -> str:
    """``5/5 ok`` when every run got every lead; else what went wrong."""
    cell = f"{entry['passed']}/{entry['runs']} ok"
    if entry["intact"] < entry["runs"]:
        cell += f", {entry['runs'] - entry['intact']} crashed or broken"
    if entry["failed_ids"]:
        cell += f" ({entry['failed_ids']} id(s) failed after retries)"
    return cell


def _zoo_goodput_cell(entry: Mapping[str, Any]) -> str:
    cell = _fmt_pct(entry["goodput"])
    if entry["tail_goodput"] is not None:
        cell += f" (tail {_fmt_pct(entry['tail_goodput'])})"
    if entry["crashed"]:
        cell += f" [{entry['crashed']} crashed]"
    return cell


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _zoo_lines(data: Mapping[str, Any], markdown: bool) -> list[str]:
    """One line per row, worst for the judged contender first, contenders side by side."""
    summary = data["summary"]
    rows = summary["rows"]
    order = [c for c in data.get("contenders", ()) if any(c in r["contenders"] for r in rows)]
    header = ["#", "row", "limiter", "429s say", "faults", "target"]
    for contender in order:
        header += [
            f"{contender} goodput",
            f"{contender} 429s",
            f"{contender} lost/failed",
            f"{contender} time",
        ]
    header.append("flags")
    table = []
    for rank, row in enumerate(rows, 1):
        cells = [
            str(rank),
            row["row"],
            row["limiter"],
            row["answers"],
            row["faults"],
            _fmt_pct(row["target"]),
        ]
        for contender in order:
            entry = row["contenders"].get(contender)
            if entry is None:
                cells += ["-", "-", "-", "-"]
                continue
            cells += [
                _zoo_goodput_cell(entry),
                _fmt_pct(entry["share_429"]),
                f"{entry['lost']}/{entry['failed']}",
                _fmt_seconds(entry["elapsed"]),
            ]
        cells.append("; ".join(row["flags"]) or "ok")
        table.append(cells)
    note = (
        "goodput = ok / (B + integral of L dt): B what the limiter admits at once, L its "
        f"long-run rate; rows sorted worst first for {summary['judged']} (goodput minus "
        f"target); {summary['flagged']}/{len(rows)} rows flagged."
    )
    return [note, "", *_table(header, table, markdown), ""]


def _loop_ratio_line(summary: Mapping[str, Any]) -> str | None:
    """``sdk/aiohttp: 0.99x on asyncio, 0.97x on uvloop``, when more than one loop ran."""
    parts = []
    for name, entry in summary.items():
        base, loop = split_name(name)
        if base == "sdk" and entry.get("ratio") is not None:
            parts.append(f"{_fmt_ratio(entry['ratio'])} on {loop}")
    if len(parts) < 2:
        return None
    return f"sdk/{BASELINE}, each on its own event loop: " + ", ".join(parts) + "."


def _scenario_lines(name: str, data: Mapping[str, Any], markdown: bool) -> list[str]:
    spec = SCENARIOS[name]
    summary = data["summary"]
    heading = f"{spec.title}  [{data['rounds']} rounds]"
    lines = [f"**{heading}**" if markdown else heading, ""]
    if spec.kind == "zoo":
        return [*lines, *_zoo_lines(data, markdown)]
    if spec.kind == "workers":
        for note, header, rows in _workers.table_lines(summary):
            lines += [note, "", *_table(header, rows, markdown), ""]
        return lines
    if spec.kind == "memory":
        header = ["contender", "ids", "peak RSS", "RSS after imports", "leads/s", "check"]
        rows = [
            [
                entry["contender"],
                f"{entry['n']:,}",
                _fmt_mb(entry["peak_rss_mb"]),
                _fmt_mb(entry["start_rss_mb"]),
                _fmt_rate(entry["leads_per_s"]),
                "ok" if entry["passed"] else "FAILED",
            ]
            for entry in sorted(summary.values(), key=lambda e: e["n"])
        ]
        return [*lines, *_table(header, rows, markdown), ""]
    order = [c for c in data.get("contenders", summary) if c in summary]
    if spec.kind == "ratelimit":
        header = [
            "contender",
            "leads",
            "leads/s median",
            "goodput (t+W corrected) [min-max]",
            "goodput n/(t*L)",
            "429s / requests",
            "requests",
            "CPU us/lead",
            "peak RSS",
            "check",
        ]
        rows = []
        for contender in order:
            e = summary[contender]
            rows.append(
                [
                    contender,
                    f"{e['n']:,}",
                    _fmt_rate(e["median"]),
                    f"{_fmt_pct(e['goodput_corrected'])} "
                    f"[{_fmt_pct(e['goodput_corrected_min'])}-"
                    f"{_fmt_pct(e['goodput_corrected_max'])}]",
                    _fmt_pct(e["goodput"]),
                    _fmt_pct(e["share_429"]),
                    _fmt_rate(e["requests"]),
                    _fmt_us(e["cpu_us_per_lead"]),
                    _fmt_mb(e["peak_rss_mb"]),
                    _check_cell(e),
                ]
            )
        return [*lines, *_table(header, rows, markdown), ""]
    header = [
        "contender",
        "leads",
        "leads/s median",
        "min",
        "max",
        f"vs {BASELINE} (same loop)",
        "CPU us/lead",
        "GCs",
        "server CPU",
        "peak RSS",
        "check",
    ]
    rows = []
    for contender in order:
        e = summary[contender]
        rows.append(
            [
                contender,
                f"{e['n']:,}",
                _fmt_rate(e["median"]),
                _fmt_rate(e["min"]),
                _fmt_rate(e["max"]),
                _fmt_ratio(e["ratio"]),
                _fmt_us(e["cpu_us_per_lead"]),
                _fmt_rate(e["gc_collections"]),
                _fmt_pct(e["server_util"]),
                _fmt_mb(e["peak_rss_mb"]),
                _check_cell(e),
            ]
        )
    loops = _loop_ratio_line(summary)
    return [*lines, *_table(header, rows, markdown), *([] if loops is None else ["", loops]), ""]


def _micro_lines(micro: Mapping[str, Any], markdown: bool) -> list[str]:
    heading = f"(e) micro: CPU per lead (timeit, GC on; SDK JSON: {micro['sdk_json_decoder']})"
    lines = [f"**{heading}**" if markdown else heading, ""]
    header = ["case", "median us/lead", "best us/lead"]
    rows = [
        [name, f"{case['median_us']:.2f}", f"{case['best_us']:.2f}"]
        for name, case in micro["cases"].items()
    ]
    return [*lines, *_table(header, rows, markdown), ""]


def _target_lines(targets: Sequence[Mapping[str, Any]], markdown: bool) -> list[str]:
    lines = ["**Targets (issue 5)**" if markdown else "Targets (issue 5)", ""]
    header = ["target", "wanted", "measured", "met"]
    verdict = {True: "yes", False: "NO", None: "-"}
    rows = [[t["target"], t["wanted"], t["measured"], verdict[t["met"]]] for t in targets]
    return [*lines, *_table(header, rows, markdown), ""]


def render_tables(results: Mapping[str, Any], *, markdown: bool = False) -> str:
    """Every scenario's table, the micro table and the targets, as text or Markdown."""
    lines: list[str] = []
    for name, data in results.get("scenarios", {}).items():
        if data.get("summary"):
            lines += _scenario_lines(name, data, markdown)
    micro = results.get("micro")
    if micro and not micro.get("crashed"):
        lines += _micro_lines(micro, markdown)
    targets = results.get("targets")
    if targets:
        lines += _target_lines(targets, markdown)
    return "\n".join(lines)


# --- files -----------------------------------------------------------------------------------


def write_json(results: Mapping[str, Any], path: Path) -> None:
    """Write the whole results document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def write_markdown(results: Mapping[str, Any], path: Path) -> None:
    """Write the tables as Markdown, for the README."""
    meta = results.get("meta", {})
    revision = meta.get("revision", {})
    commit = revision.get("commit") or "unknown"
    if revision.get("sdk_modified"):
        commit += " with uncommitted SDK changes"
    head = [
        f"Run of {meta.get('started', '?')} at commit {commit}: `{meta.get('command', '')}` "
        f"({meta.get('duration_s', 0):.0f} s; {meta.get('pinning', '')}).",
        "",
    ]
    text = "\n".join(head) + "\n" + render_tables(results, markdown=True) + "\n"
    path.write_text(text, encoding="utf-8")


def write_chart(results: Mapping[str, Any], path: Path) -> None:
    """Throughput by contender and scenario (ratios annotated), RSS and micro, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = results.get("scenarios", {})
    panels: list[tuple[str, Mapping[str, Any]]] = [
        (name, data)
        for name, data in scenarios.items()
        if data.get("summary") and SCENARIOS[name].kind in ("throughput", "ratelimit")
    ]
    extra = int("d" in scenarios and bool(scenarios["d"].get("summary")))
    micro = results.get("micro")
    extra += int(bool(micro) and not micro.get("crashed"))
    count = len(panels) + extra
    if count == 0:
        return
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    colors = {
        "sdk": "#1f6feb",
        "sdk-iter": "#6ea8fe",
        "sdk@uvloop": "#0a3069",
        "aiohttp": "#2da44e",
        "aiohttp@uvloop": "#116329",
        "httpx": "#d29922",
        "quick-sdk": "#cf222e",
    }
    for ax, (name, data) in zip(flat, panels, strict=False):
        spec = SCENARIOS[name]
        summary = data["summary"]
        order = [c for c in data.get("contenders", summary) if c in summary]
        medians = [summary[c]["median"] or 0.0 for c in order]
        low = [m - (summary[c]["min"] or m) for c, m in zip(order, medians, strict=True)]
        high = [(summary[c]["max"] or m) - m for c, m in zip(order, medians, strict=True)]
        bars = ax.bar(
            order,
            medians,
            yerr=[low, high],
            capsize=4,
            color=[colors.get(c, "#888888") for c in order],
        )
        for bar, contender in zip(bars, order, strict=True):
            entry = summary[contender]
            if spec.kind == "ratelimit":
                label = (
                    f"{_fmt_pct(entry['goodput_corrected'])} of limit\n"
                    f"429s {_fmt_pct(entry['share_429'])}"
                )
            else:
                label = _fmt_ratio(entry["ratio"])
            top = entry["max"] if entry["max"] is not None else bar.get_height()
            ax.annotate(
                label,
                (bar.get_x() + bar.get_width() / 2, top),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        if spec.kind == "ratelimit" and spec.rate_limit is not None:
            ax.axhline(spec.rate_limit / spec.rate_window, color="#555555", ls="--", lw=1)
        ax.set_title(spec.title, fontsize=9)
        ax.set_ylabel("leads/s (median, min-max)")
        ax.margins(y=0.25)
        ax.tick_params(axis="x", labelsize=8)
    index = len(panels)
    if "d" in scenarios and scenarios["d"].get("summary"):
        ax = flat[index]
        index += 1
        entries = sorted(scenarios["d"]["summary"].values(), key=lambda e: e["n"])
        sizes = [e["n"] for e in entries]
        peaks = [e["peak_rss_mb"] or 0.0 for e in entries]
        ax.plot(sizes, peaks, marker="o", color=colors["sdk-iter"])
        for x, y in zip(sizes, peaks, strict=True):
            ax.annotate(f"{y:.1f} MB", (x, y), xytext=(0, 6), textcoords="offset points")
        ax.axhline(100, color="#cf222e", ls="--", lw=1, label="target: 100 MB")
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.minorticks_off()
        ax.set_ylim(0, 110)
        ax.set_xlabel("ids walked by iter_leads")
        ax.set_ylabel("peak RSS (MB)")
        ax.set_title(SCENARIOS["d"].title, fontsize=9)
        ax.legend(fontsize=8)
    if micro and not micro.get("crashed"):
        ax = flat[index]
        index += 1
        cases = micro["cases"]
        names = list(cases)[::-1]
        values = [cases[n]["median_us"] for n in names]
        labels = [textwrap.fill(n, 34) for n in names]
        ax.barh(labels, values, color="#8250df")
        for y, value in enumerate(values):
            ax.annotate(f"{value:.1f}", (value, y), xytext=(3, -3), textcoords="offset points")
        ax.axvline(15, color="#cf222e", ls="--", lw=1, label="target: 15 us")
        ax.set_xlabel("us per lead (median)")
        ax.set_title("(e) micro: classify + parse + structure", fontsize=9)
        ax.tick_params(axis="y", labelsize=6)
        ax.legend(fontsize=8)
    for ax in flat[index:]:
        ax.set_visible(False)
    meta = results.get("meta", {})
    fig.suptitle(
        f"dialnexa_async benchmarks, {meta.get('started', '')} "
        f"({meta.get('machine', {}).get('cpu_model', '?')}, {meta.get('pinning', '')})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
