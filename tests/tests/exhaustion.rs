//! Running out of file descriptors (issue 18 item 4): with a low limit set
//! for the daemon, connections past it wait in the kernel's accept queue;
//! the accept loop backs off instead of spinning a CPU, counts the errors,
//! logs them at most once a second, and serves again as soon as
//! descriptors free up.

use std::{
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use balancer_tests::{
    Process, Topology, client::http_get, config::web_on_backend0, nginx, topology::VIP4,
};

/// The daemon's descriptor limit, soft and hard (it raises soft to hard).
const NOFILE: u32 = 64;

/// CPU time (user + system) of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15, here 11 and 12 from the state.
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_and_recovers() {
    let t = Topology::new(1);
    let _nginx = nginx::start_all(&t, 80, false);
    let cfg = web_on_backend0();
    balancer_tests::write_config(t.dir.path(), &cfg);
    let config = t.dir.path().join("balancer.yaml");
    let mut cmd = t.lb.command("prlimit");
    cmd.arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg("--")
        .arg(balancer_tests::balancer_bin())
        .args(["run", "-c", config.to_str().expect("utf-8")])
        .env("RUST_LOG", "info");
    let mut lb = Process::spawn("balancer", cmd, t.path("balancer.log"));
    lb.wait_for("listening", 1, Duration::from_secs(15));
    let vip: SocketAddr = (VIP4, 80).into();
    assert_eq!(
        t.client.enter(|| http_get(vip, None)).as_deref(),
        Ok("backend-1")
    );

    // Idle connections, each two descriptors in the daemon, well past what
    // it has: the rest wait in the accept queue.
    let held: Vec<TcpStream> = t.client.enter(|| {
        (0..NOFILE)
            .map(|_| TcpStream::connect(vip).expect("connect"))
            .collect()
    });
    lb.wait_for("accept failed", 1, Duration::from_secs(5));
    assert!(
        lb.output().contains("Too many open files"),
        "{}",
        lb.output()
    );

    // Exhausted for 3 s: the loop waits between attempts instead of
    // retrying at once (a spinning loop would use a whole core, 300 ticks).
    let before = cpu_ticks(lb.pid());
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(lb.pid()) - before;
    let secs = start.elapsed().as_secs();
    eprintln!("out of descriptors: {used} CPU ticks in {secs} s");
    assert!(
        used <= 30,
        "{used} ticks of CPU in {secs} s while out of descriptors"
    );
    // One log line a second at most.
    let lines = lb.output().matches("accept failed").count();
    assert!(lines <= 8, "{lines} accept-failure log lines");

    // Descriptors free up: the queued connections and new ones are served.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match t.client.enter(|| http_get(vip, None)) {
            Ok(body) if body == "backend-1" => break,
            r => assert!(Instant::now() < deadline, "not served again: {r:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, status) = balancer_tests::admin::call(&t.lb, "GET", "/status", None);
    assert_eq!(code, 200, "{status}");
    let errors = status["listeners"][0]["counters"]["accept_errors"]
        .as_u64()
        .unwrap_or(0);
    eprintln!("accept errors counted: {errors}");
    assert!(errors > 0, "accept errors not counted: {status}");
    assert!(
        errors < 200,
        "{errors} accept attempts in about 4 s: the loop does not back off"
    );
}
