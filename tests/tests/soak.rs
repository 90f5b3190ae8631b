//! The soak (issue 18): every plane at once under load for minutes
//! (`BALANCER_SOAK_MINUTES`, 3 in `cargo xtask test`) while backends stop
//! and start, the config reloads, guard lists change, the daemon upgrades
//! and packets toward the backends are dropped. It fails on any client
//! error no backend flap explains, memory or descriptors that grow after
//! warm-up, a log storm, a panic, a health check that missed a flap, or an
//! old daemon that outlived its grace. With `BALANCER_SOAK_OUT` set it
//! writes the run as `soak.json` there (what `cargo xtask soak` plots).

use balancer_tests::soak::{self, Settings, report};

#[test]
fn every_plane_under_flaps_reloads_upgrades_and_loss_stays_clean() {
    let settings = Settings::from_env();
    let run = soak::run(&settings);
    eprintln!("{}", report::summary(&run));
    if let Some(dir) = soak::out_dir() {
        std::fs::create_dir_all(&dir).expect("create the soak output directory");
        let path = dir.join("soak.json");
        let text = serde_json::to_string_pretty(&report::json(&run)).expect("JSON");
        std::fs::write(&path, text).expect("write soak.json");
        eprintln!("soak: wrote {}", path.display());
    }
    let problems = report::problems(&run);
    assert!(
        problems.is_empty(),
        "the soak broke promises:\n{}",
        problems.join("\n")
    );
}
