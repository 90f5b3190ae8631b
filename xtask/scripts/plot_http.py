#!/usr/bin/env python3
"""Draws docs/bench/http.png from the HTTP benchmark's JSON.

Usage: plot_http.py RESULTS.json OUT.png

Two panels, one bar colour per target: requests per second (keep-alive,
`Connection: close`, HTTP/2, grouped by load) and memory per idle client
connection. Bars are medians over the rounds; whiskers reach the lowest
and highest run. Needs only matplotlib (Debian python3-matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = ["balancer", "haproxy", "nginx", "hyper_floor"]
COLOURS = {"balancer": "#1f77b4", "haproxy": "#ff7f0e", "nginx": "#2ca02c", "hyper_floor": "#9e9e9e"}
LOADS = [("keepalive_rps", "keep-alive"), ("close_rps", "Connection: close"), ("h2_rps", "HTTP/2")]


def figure(data, target, key):
    f = data.get(f"{target}.{key}", {"median": 0, "low": 0, "high": 0})
    return f["median"], f["median"] - f["low"], f["high"] - f["median"]


def main():
    data = json.load(open(sys.argv[1]))
    fig, (rate, idle) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.2
    for i, target in enumerate(TARGETS):
        xs = [j + (i - 1.5) * width for j in range(len(LOADS))]
        vals = [figure(data, target, key) for key, _ in LOADS]
        rate.bar(xs, [v[0] for v in vals], width, yerr=[[v[1] for v in vals], [v[2] for v in vals]],
                 color=COLOURS[target], label=target, capsize=3)
    rate.set_xticks(range(len(LOADS)))
    rate.set_xticklabels([label for _, label in LOADS])
    rate.set_ylabel("requests per second")
    rate.legend()
    vals = [figure(data, t, "idle_kib_per_conn") for t in TARGETS]
    idle.bar(TARGETS, [v[0] for v in vals], color=[COLOURS[t] for t in TARGETS])
    idle.set_ylabel("KiB per idle client connection")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


main()
