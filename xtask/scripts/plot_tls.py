#!/usr/bin/env python3
"""Draws docs/bench/tls.png from the TLS benchmark's JSON.

Usage: plot_tls.py RESULTS.json OUT.png

Three panels, one bar colour per target: handshakes per second (full TLS
1.3 and 1.2 with ECDSA and RSA keys, resumed TLS 1.3 and 1.2), HTTPS
keep-alive requests per second, bulk HTTPS throughput. Bars are medians
over the rounds; whiskers reach the lowest and highest run. Needs only
matplotlib (Debian python3-matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = ["balancer", "haproxy", "nginx"]
COLOURS = {"balancer": "#1f77b4", "haproxy": "#ff7f0e", "nginx": "#2ca02c"}
HANDSHAKES = [
    ("full13_ecdsa", "full 1.3\nECDSA"),
    ("full12_ecdsa", "full 1.2\nECDSA"),
    ("full13_rsa", "full 1.3\nRSA"),
    ("full12_rsa", "full 1.2\nRSA"),
    ("resumed13_ecdsa", "resumed\n1.3"),
    ("resumed12_ecdsa", "resumed\n1.2"),
]


def figure(data, target, key):
    f = data.get(f"{target}.{key}", {"median": 0, "low": 0, "high": 0})
    return f["median"], f["median"] - f["low"], f["high"] - f["median"]


def bars(ax, data, keys):
    width = 0.8 / len(TARGETS)
    for i, target in enumerate(TARGETS):
        xs = [j + (i - (len(TARGETS) - 1) / 2) * width for j in range(len(keys))]
        vals = [figure(data, target, key) for key, _ in keys]
        ax.bar(xs, [v[0] for v in vals], width, yerr=[[v[1] for v in vals], [v[2] for v in vals]],
               color=COLOURS[target], label=target, capsize=3)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([label for _, label in keys])


def main():
    data = json.load(open(sys.argv[1]))
    fig, (hs, keep, bulk) = plt.subplots(1, 3, figsize=(13, 4), gridspec_kw={"width_ratios": [4, 1, 1]})
    bars(hs, data, HANDSHAKES)
    hs.set_ylabel("handshakes per second (one request each)")
    hs.legend()
    bars(keep, data, [("keepalive_rps", "keep-alive")])
    keep.set_ylabel("requests per second")
    bars(bulk, data, [("bulk_mbps", "bulk")])
    bulk.set_ylabel("Mbit/s")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


main()
