//! `cargo xtask bench xdp`: the XDP program's cost per packet through
//! `BPF_PROG_TEST_RUN`, beside a bare `XDP_TX` program measured in the same
//! run. The measuring lives in the balancer crate's `xdp_bench` example (it
//! needs the crate's loader, which xtask must not depend on: xtask is built
//! before `setup` has installed the eBPF toolchain). This module runs it for
//! a few rounds and writes `docs/bench/xdp.md`, a JSON file and a chart.

use std::{fmt::Write as _, path::Path, process::Command};

use anyhow::{Context as _, Result};

use balancer_tests::{Netns, Process};

use super::page::{ANALYSIS, Page};
use crate::shell::{output, status};

/// Cases in report order: key, label, the bare yardstick it is compared with.
const CASES: &[(&str, &str, &str)] = &[
    (
        "established_tcp",
        "established TCP flow (flow-table hit)",
        "bare_tx",
    ),
    ("udp", "UDP, established", "bare_tx"),
    ("not_vip_pass", "not for a VIP (passed)", "bare_tx"),
    (
        "new_flow_syn_single",
        "new TCP flow (SYN: ring + insert), single runs",
        "bare_tx_single",
    ),
    (
        "established_tcp_via_harness",
        "established TCP flow, through the harness (check: harness cost subtracted)",
        "bare_tx",
    ),
    (
        "ipip_established_tcp",
        "established TCP flow, IP-in-IP (through the harness, its cost subtracted)",
        "bare_tx",
    ),
    (
        "lookup16_tx",
        "yardstick: one hash-table hit, 16-byte key copied from the frame, then XDP_TX",
        "bare_tx",
    ),
    (
        "lookup40_tx",
        "yardstick: the same with a 40-byte key (the flow table's)",
        "bare_tx",
    ),
    (
        "ipip_new_flow_syn_single",
        "new TCP flow, IP-in-IP, single runs",
        "bare_tx_single",
    ),
];

/// Runs the benchmark; with `against`, that revision's XDP program too.
pub fn run(root: &Path, rounds: u32, against: Option<&str>) -> Result<()> {
    status(
        Command::new("cargo")
            .args([
                "build",
                "--release",
                "-p",
                "balancer",
                "--bins",
                "--example",
                "xdp_bench",
                "--features",
                "testkit",
            ])
            .current_dir(root),
    )?;
    let other = against.map(|rev| object_of(root, rev)).transpose()?;
    let runs = measure(root, rounds, other.as_ref().map(|(_, o)| o.as_path()))?;
    report(
        root,
        rounds,
        &runs,
        other.as_ref().map(|(rev, _)| rev.as_str()),
    )
}

/// Builds revision `rev`'s XDP object from a copy of its tree (`git
/// archive`, under `target/bench-against/`) the way aya-build builds this
/// one's; returns its short hash and the object's path.
fn object_of(root: &Path, rev: &str) -> Result<(String, std::path::PathBuf)> {
    let commit = format!("{rev}^{{commit}}");
    let hash = output(
        Command::new("git")
            .args(["rev-parse", "--verify", &commit])
            .current_dir(root),
    )
    .with_context(|| format!("`{rev}` is not a commit of this repository"))?;
    let hash = hash.trim().to_owned();
    let short = hash[..12.min(hash.len())].to_owned();
    let dir = root.join("target/bench-against").join(&short);
    if !dir.exists() {
        // Unpacked beside, then renamed: an interrupted unpacking never
        // passes for a tree.
        let partial = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial)?;
        let tar = partial.with_extension("tar");
        status(
            Command::new("git")
                .args(["archive", "--format=tar", "-o"])
                .arg(&tar)
                .arg(&hash)
                .current_dir(root),
        )?;
        status(
            Command::new("tar")
                .arg("-xf")
                .arg(&tar)
                .arg("-C")
                .arg(&partial),
        )?;
        std::fs::remove_file(&tar)?;
        std::fs::rename(&partial, &dir)?;
    }
    // As aya-build builds this one's (its target architecture is the
    // host's here).
    let arch = std::env::consts::ARCH;
    let flags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
    ]
    .join("\x1f");
    status(
        Command::new("rustup")
            .args([
                "run",
                "nightly",
                "cargo",
                "build",
                "--package",
                "balancer-ebpf",
                "--bins",
            ])
            .args([
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
            ])
            .arg("--target-dir")
            .arg(dir.join("target-ebpf"))
            .env("CARGO_ENCODED_RUSTFLAGS", flags)
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .current_dir(&dir),
    )
    .with_context(|| format!("building the XDP program of {short}"))?;
    Ok((
        short,
        dir.join("target-ebpf/bpfel-unknown-none/release/balancer"),
    ))
}

use super::Run;

/// Runs the example `rounds` times inside a namespace of its own with a
/// veth pair for the live-frames part.
fn measure(root: &Path, rounds: u32, against: Option<&Path>) -> Result<Vec<Run>> {
    let bin = root.join("target/release/examples/xdp_bench");
    // Live frames leave through v0 and arrive at v1, which needs NAPI to take
    // XDP frames in: any XDP program gives it that, and ours is the
    // decapsulator with an endpoint no packet carries (a pass-through).
    let ns = Netns::new("xb");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
    ns.ip(&["link", "set", "v0", "up"]);
    ns.ip(&["link", "set", "v1", "up"]);
    let daemon = root.join("target/release/balancer");
    let mut napi_cmd = ns.command(daemon.to_str().context("utf-8 path")?);
    napi_cmd.args(["decap", "--interface", "v1", "--endpoint", "198.18.255.255"]);
    let mut napi = Process::spawn(
        "pass-through",
        napi_cmd,
        std::env::temp_dir().join("balancer-bench-napi.log"),
    );
    napi.wait_for("decapsulating", 1, std::time::Duration::from_secs(10));
    let mut runs: Vec<Run> = Vec::new();
    for r in 1..=rounds {
        let mut cmd = ns.command(bin.to_str().context("utf-8 path")?);
        cmd.arg("v0");
        if let Some(object) = against {
            cmd.arg("--against").arg(object);
        }
        let text = output(&mut cmd).context("running the XDP benchmark (needs root)")?;
        eprintln!("bench xdp: round {r}/{rounds}: {}", text.trim());
        runs.push(serde_json::from_str(text.trim()).context("parsing xdp_bench output")?);
    }
    drop(napi);
    Ok(runs)
}

/// The established-flow cost at each flow-table size the example walked.
fn curve_table(runs: &[Run]) -> String {
    let mut t = String::from(
        "| live flows | ns/packet (median) | range | flows placed while timed |\n|---|---|---|---|\n",
    );
    for n in [1u32, 10_000, 100_000, 1_000_000] {
        let key = format!("walk_established_{n}");
        if runs.iter().all(|r| r.get(&key).is_none()) {
            continue;
        }
        let (m, lo, hi) = super::median_range(runs, &key);
        let (new, _, _) = super::median_range(runs, &format!("walk_new_flows_{n}"));
        let _ = writeln!(t, "| {n} | {m:.1} | {lo:.1}-{hi:.1} | {new:.0} |");
        println!("established flow, {n} live flows: {m:.1} ns");
    }
    t
}

/// New-flow and no-VIP costs with a larger ring and with 1,000 VIPs.
fn rings_table(runs: &[Run]) -> String {
    let mut t = String::from("| case | ns/packet (median) | range |\n|---|---|---|\n");
    for (key, label) in [
        (
            "bare_tx_single_rings",
            "bare XDP_TX, single runs (yardstick)",
        ),
        (
            "new_flow_ring_65537",
            "new flow, ring of 65,537 slots, 1 VIP, single runs",
        ),
        (
            "new_flow_ring_655373",
            "new flow, ring of 655,373 slots, 1 VIP, single runs",
        ),
        (
            "new_flow_vips_1000",
            "new flow, 1,000 VIPs (ring 65,537), single runs",
        ),
        ("not_vip_pass", "packet for no VIP, 2 VIPs (repeated)"),
        (
            "not_vip_vips_1000",
            "packet for no VIP, 1,000 VIPs (repeated)",
        ),
    ] {
        if runs.iter().all(|r| r.get(key).is_none()) {
            continue;
        }
        let (m, lo, hi) = super::median_range(runs, key);
        let _ = writeln!(t, "| {label} | {m:.1} | {lo:.1}-{hi:.1} |");
    }
    t
}

/// The established flow with the kernel's reports off, at `trace`, and
/// through the other build when there was one.
fn diag_table(runs: &[Run], against: Option<&str>) -> String {
    let mut t =
        String::from("| program | case | ns/packet (median) | range |\n|---|---|---|---|\n");
    let other = against.map_or_else(
        || "this build again (no `--against`: the noise between two instances)".to_owned(),
        |rev| format!("`{rev}`, built from its own tree"),
    );
    let established = "established TCP flow";
    let new = "new TCP flow, single runs";
    for (key, label, case) in [
        (
            "established_tcp",
            "this build, diagnostics off (default)".to_owned(),
            established,
        ),
        (
            "diag_trace_established_tcp",
            "this build, diagnostics at `trace`".to_owned(),
            established,
        ),
        ("against_established_tcp", other.clone(), established),
        (
            "new_flow_syn_single",
            "this build, diagnostics off (default)".to_owned(),
            new,
        ),
        ("against_new_flow_syn_single", other, new),
    ] {
        if runs.iter().all(|r| r.get(key).is_none()) {
            continue;
        }
        let (m, lo, hi) = super::median_range(runs, key);
        let _ = writeln!(t, "| {label} | {case} | {m:.1} | {lo:.1}-{hi:.1} |");
        println!("{label}, {case}: {m:.1} ns");
    }
    t
}

/// Prints the figures and writes the page, the JSON and the chart.
fn report(root: &Path, rounds: u32, runs: &[Run], against: Option<&str>) -> Result<()> {
    let figure = |key: &str| super::median_range(runs, key);
    let mut table = String::from(
        "| case | ns/packet (median) | range | bare XDP_TX same way | ratio to bare |\n|---|---|---|---|---|\n",
    );
    let mut plot = Vec::new();
    for (key, label, bare) in CASES {
        let (m, lo, hi) = figure(key);
        let (b, _, _) = figure(bare);
        let _ = writeln!(
            table,
            "| {label} | {m:.1} | {lo:.1}-{hi:.1} | {b:.1} | {:.2}x |",
            m / b
        );
        println!("{label:<52} {m:>8.1} ns  ({:.2}x bare {b:.1} ns)", m / b);
        plot.push(serde_json::json!({ "case": label, "ns": m, "bare": b }));
    }
    let (live_bare, lo_b, hi_b) = figure("live_bare_tx_mpps");
    let (live_lb, lo_l, hi_l) = figure("live_established_tcp_mpps");
    let live = format!(
        "| program | Mpps (median) | range |\n|---|---|---|\n| bare XDP_TX | {live_bare:.2} | {lo_b:.2}-{hi_b:.2} |\n\
         | balancer, established flow (DSR) | {live_lb:.2} | {lo_l:.2}-{hi_l:.2} |\n\nbalancer / bare: {:.2}x\n",
        live_lb / live_bare
    );
    println!(
        "live frames on veth: bare {live_bare:.2} Mpps, balancer {live_lb:.2} Mpps ({:.2}x)",
        live_lb / live_bare
    );
    let curve = curve_table(runs);
    let rings = rings_table(runs);
    let diag = diag_table(runs, against);
    let page = Page::new(root, "xdp")?;
    let json =
        page.write_json(&serde_json::json!({ "rounds": runs, "cases": plot, "against": against }))?;
    let png = page.file("png");
    status(
        Command::new("/usr/bin/python3")
            .arg(root.join("xtask/scripts/plot_xdp.py"))
            .arg(&json)
            .arg(&png),
    )?;
    let kernel = output(Command::new("uname").arg("-r")).unwrap_or_default();
    let doc = page.write(&format!(
        "# XDP benchmark: cost per packet\n\n\
         Generated by `cargo xtask bench xdp` ({rounds} rounds, median and range; kernel {}). Everything above\n\
         `{ANALYSIS}` is rewritten on each run. Raw figures: [xdp.json](xdp.json).\n\n\
         ## Results\n\n{table}\n![ns per packet beside bare XDP_TX](xdp.png)\n\n\
         Targets (issue 17): an established DSR flow at most 2.0x the bare `XDP_TX` program, a new flow\n\
         3.0x, UDP established 2.0x, a packet for no VIP 1.5x, an established IP-in-IP flow 2.5x; live\n\
         frames at least 0.9x.\n\n\
         ### Live frames on veth\n\n{live}\n\
         ### Cost as the flow table fills\n\n{curve}\n\
         ### Ring size and VIP count\n\n{rings}\n\
         ### Kernel diagnostics\n\n{diag}\n\
         ## Method\n\n\
         `BPF_PROG_TEST_RUN` on the loaded, unattached programs (the balancer with a 3-backend TCP VIP and a\n\
         2-backend UDP VIP in DSR mode, a 1,000,000-entry flow table; and `bench_bare_tx`, which returns\n\
         `XDP_TX` and does nothing else), run by `balancer/examples/xdp_bench.rs`. Repeated cases use the\n\
         kernel's repeat loop: 1,000,000 runs of one frame per case, in 20 slices of 50,000 taken in turn\n\
         across all cases (this VM's speed drifts by tens of percent within a minute, and interleaving puts a\n\
         drift on every case alike); each figure is the median slice. A new flow cannot be\n\
         repeated (the first run records it), so it is measured as 20,000 single runs over distinct SYNs, beside\n\
         the bare program measured the same way; single runs include the kernel's per-run timing overhead,\n\
         hence the higher bare figure there.\n\n\
         IP-in-IP: the repeat loop runs on one buffer and does not restore it, so an encapsulating program\n\
         sees its own output from the second run on. Repeated IP-in-IP runs therefore go through a harness\n\
         program, `bench_restore`, which puts the original frame back (`bpf_xdp_adjust_head`, then\n\
         `bpf_xdp_store_bytes`) and tail-calls the balancer. The harness in front of the bare program is\n\
         measured in the same run (`harness_bare_tx` in the JSON) and subtracted: the figure is harness +\n\
         balancer - (harness + bare) + bare. The DSR established flow measured the same way checks the\n\
         subtraction against the direct figure. New IP-in-IP flows are single runs, which start from a\n\
         fresh buffer each time and need no harness.\n\n\
         Live frames: `BPF_F_TEST_XDP_LIVE_FRAMES` with the frame arriving on `v0` of a veth pair in a namespace\n\
         of its own, 5,000,000 frames per program, batches of 64; `XDP_TX` really transmits, and `v1` takes the\n\
         frames in with a pass-through XDP program (NAPI needs one). Millions of packets per second from the\n\
         wall time of the run; both CPUs are shared by sender and receiver.\n\n\
         Cost curve: the walking harness (`bench_walk`) gives each repeated run's frame the source address\n\
         and port of the next of N flows, then tail-calls the balancer (2,000,000-entry flow table), so the\n\
         packets spread over N live flows and the lookups miss the caches as real traffic does. One pass\n\
         places every flow first; then 2,000,000 runs in 20 interleaved slices, beside the harness in\n\
         front of the bare program, whose cost is subtracted as above. Flows placed during the timed runs\n\
         are counted (0: every packet was a flow-table hit).\n\n\
         Ring size and VIP count: the same pool with `maglev_table_size` 65,537 or 655,373 behind one VIP,\n\
         and behind 1,000 XDP listeners (port 80 of 1,000 addresses, 198.18.104.1 up); 20,000 distinct SYNs each as\n\
         single runs (to the 500th listener), beside the bare program the same way, and a packet for no VIP\n\
         repeated 1,000,000 times.\n\n\
         Kernel diagnostics: the established flow through this build with its reports off (the\n\
         default), through a second instance reporting at `trace` (its ring never read; no report lies\n\
         on that path), and, with `--against REV`, through that revision's program built from its own\n\
         tree (`target/bench-against/`), all interleaved in the same slices as the cases above; new\n\
         flows (whose path holds report sites for failures that do not happen here) as single runs,\n\
         one program after the other.\n",
        kernel.trim()
    ))?;
    println!(
        "wrote {}, {} and {}",
        doc.display(),
        json.display(),
        png.display()
    );
    Ok(())
}
