"""Bar chart of the XDP benchmark: ns per packet per case beside the bare XDP_TX program."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> None:
    cases = json.load(open(src))["cases"]
    labels = [c["case"].replace(" (", "\n(") for c in cases]
    x = range(len(cases))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.bar([i - 0.2 for i in x], [c["ns"] for c in cases], 0.4, label="balancer", color="#1f77b4")
    ax.bar([i + 0.2 for i in x], [c["bare"] for c in cases], 0.4, label="bare XDP_TX (same method)", color="#9e9e9e")
    for i, c in enumerate(cases):
        ax.text(i - 0.2, c["ns"], f'{c["ns"]:.0f}', ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, c["bare"], f'{c["bare"]:.0f}', ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("ns per packet (BPF_PROG_TEST_RUN)")
    ax.set_title("XDP program cost per packet, median of rounds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
