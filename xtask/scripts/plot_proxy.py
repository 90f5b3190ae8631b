#!/usr/bin/env python3
"""Draws docs/bench/proxy.png from the proxy benchmark's JSON.

Usage: plot_proxy.py RESULTS.json OUT.png

Three panels, one bar colour per target: bulk throughput (1 and 4 iperf3
streams, grouped per target), short-connection rate (wrk), and proxy RSS per
idle connection (no bar for direct, which has no proxy). Bars are medians
over the rounds; whiskers reach the lowest and highest run. Called by
`cargo xtask bench proxy`; needs only matplotlib (Debian python3-matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {
    "direct": "#9e9e9e",
    "balancer": "#1f77b4",
    "balancer-sockmap": "#17becf",
    "haproxy": "#ff7f0e",
    "nginx": "#2ca02c",
}


def spread(targets, key):
    """Error bars from the median down to the lowest and up to the highest run."""
    low, high = [], []
    for t in targets:
        runs = [r[key] for r in t.get("runs", [])] or [t[key]]
        low.append(t[key] - min(runs))
        high.append(max(runs) - t[key])
    return [low, high]


def label_bars(ax, bars, fmt, tops=None):
    for i, bar in enumerate(bars):
        h = bar.get_height()
        top = tops[i] if tops else h
        ax.annotate(
            fmt.format(h),
            (bar.get_x() + bar.get_width() / 2, top),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
        )


def main(src, out):
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    targets = data["targets"]
    names = [t["name"] for t in targets]
    colours = [COLOURS.get(n, "#7f7f7f") for n in names]
    xs = list(range(len(names)))

    fig, (tput, rate, rss) = plt.subplots(1, 3, figsize=(15, 4.8))

    width = 0.38
    for offset, key, hatch, legend in (
        (-width / 2, "throughput_1_gbps", "", "1 stream"),
        (width / 2, "throughput_4_gbps", "//", "4 streams"),
    ):
        err = spread(targets, key)
        bars = tput.bar(
            [x + offset for x in xs],
            [t[key] for t in targets],
            width,
            yerr=err,
            capsize=3,
            color=colours,
            hatch=hatch,
            edgecolor="black",
            linewidth=0.5,
            label=legend,
        )
        label_bars(tput, bars, "{:.1f}", [t[key] + e for t, e in zip(targets, err[1])])
    tput.set_title("Bulk throughput (iperf3), Gbit/s\nplain: 1 stream, hatched: 4 streams")
    tput.set_xticks(xs, names)

    err = spread(targets, "conn_rate")
    bars = rate.bar(
        xs,
        [t["conn_rate"] for t in targets],
        yerr=err,
        capsize=3,
        color=colours,
        edgecolor="black",
        linewidth=0.5,
    )
    label_bars(rate, bars, "{:,.0f}", [t["conn_rate"] + e for t, e in zip(targets, err[1])])
    rate.set_title("Short connections (wrk, Connection: close)\nconnections per second")
    rate.set_xticks(xs, names)

    proxied = [t for t in targets if t.get("rss_kib_per_idle_conn") is not None]
    px = list(range(len(proxied)))
    bars = rss.bar(
        px,
        [t["rss_kib_per_idle_conn"] for t in proxied],
        color=[COLOURS.get(t["name"], "#7f7f7f") for t in proxied],
        edgecolor="black",
        linewidth=0.5,
    )
    label_bars(rss, bars, "{:.2f}")
    idle = data["settings"]["idle_connections"]
    rss.set_title(f"Proxy RSS per idle connection, KiB\n({idle:,} idle connections; lower is better)")
    rss.set_xticks(px, [t["name"] for t in proxied])

    for ax in (tput, rate, rss):
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        ax.margins(y=0.15)

    env = data.get("environment", {})
    rounds = data["settings"].get("rounds", 1)
    fig.suptitle(
        f"balancer proxy benchmark: median of {rounds} round(s), whiskers = lowest..highest run; "
        f"kernel {env.get('kernel', '?')}, {env.get('CPUs', '?')}, {env.get('date (UTC)', '?')}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
