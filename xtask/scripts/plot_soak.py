"""Draws docs/soak.png from soak.json: the serving daemon's memory and
descriptors, answers a second by plane, and failures a second, over the
run, with backend stops, upgrades shaded and marked.
Usage: plot_soak.py SOAK.json OUT.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

run = json.load(open(sys.argv[1]))
samples = run["samples"]
t = [s["at"] / 60 for s in samples]
fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)

axes[0].plot(t, [s["rss_kib"] / 1024 for s in samples], color="tab:blue")
axes[0].set_ylabel("resident memory (MiB)")
axes[1].plot(t, [s["fds"] for s in samples], color="tab:orange")
axes[1].set_ylabel("open descriptors")

for plane, series in run["rates"].items():
    axes[2].plot([i / 60 for i in range(len(series))], series, label=plane, linewidth=0.8)
axes[2].set_ylabel("answers a second")
axes[2].legend(ncol=5, fontsize=7, loc="upper center")

failed = run["failed_per_second"]
axes[3].bar([i / 60 for i in range(len(failed))], failed, width=1 / 60, color="tab:red")
axes[3].set_ylabel("failures a second")
axes[3].set_xlabel("minutes")

stops = {}
for a in run["actions"]:
    what = a["what"]
    if "stopped" in what:
        stops[what.split()[1]] = a["at"]
    elif "started" in what:
        start = stops.pop(what.split()[1], None)
        if start is not None:
            for ax in axes:
                ax.axvspan(start / 60, a["at"] / 60, color="grey", alpha=0.12, linewidth=0)
    elif what.startswith("upgrade"):
        for ax in axes:
            ax.axvline(a["at"] / 60, color="green", linewidth=0.8, linestyle="--")

axes[0].set_title(
    f"soak: {run['minutes']:.0f} min, {run['loss_permille']}‰ loss each way on backend links; "
    "grey: a backend stopped; green: an upgrade"
)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
