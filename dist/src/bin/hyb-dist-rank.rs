//! `hyb-dist-rank`: one rank of a run with no GPU work — the rendezvous, a loop of
//! steps with a barrier each, the watchdog — to check a cluster's launch (Slurm,
//! torchrun) before a training run pays for GPUs, and the process the crate's fault
//! tests kill. Launch variables as for training; each rank prints one line at the end.
//!
//! Options: `--steps N` (10), `--step-ms M` (100), `--hang-at S` (stop advancing at
//! step S, heartbeats going on), `--exit-at S` (exit with code 9 at step S, no
//! goodbye), `--timeout SECS` (rendezvous and barriers, 60), `--dead-after SECS` (5),
//! `--hang-after SECS` (60), `--exit-after SECS` (5), `--quiet 1` (errors only).

use std::time::Duration;

use hyb_dist::{Config, Launch};

struct Options {
    steps: u64,
    step_ms: u64,
    hang_at: Option<u64>,
    exit_at: Option<u64>,
    quiet: bool,
    config: Config,
}

fn options() -> Result<Options, String> {
    let mut o =
        Options { steps: 10, step_ms: 100, hang_at: None, exit_at: None, quiet: false, config: Config::default() };
    o.config.rendezvous = Duration::from_secs(60);
    o.config.barrier = Duration::from_secs(60);
    o.config.dead_after = Duration::from_secs(5);
    o.config.hang_after = Some(Duration::from_secs(60));
    o.config.exit_after = Some(Duration::from_secs(5));
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else { return Err(format!("{} needs a value", pair[0])) };
        let number: f64 = value.parse().map_err(|_| format!("{flag} {value}: not a number"))?;
        let secs = Duration::from_secs_f64(number);
        match flag.as_str() {
            "--steps" => o.steps = number as u64,
            "--step-ms" => o.step_ms = number as u64,
            "--hang-at" => o.hang_at = Some(number as u64),
            "--exit-at" => o.exit_at = Some(number as u64),
            "--quiet" => o.quiet = number != 0.0,
            "--timeout" => (o.config.rendezvous, o.config.barrier) = (secs, secs),
            "--dead-after" => o.config.dead_after = secs,
            "--hang-after" => o.config.hang_after = Some(secs),
            "--exit-after" => o.config.exit_after = Some(secs),
            other => return Err(format!("unknown option {other}")),
        }
    }
    o.config.heartbeat_every = (o.config.dead_after / 5).min(Duration::from_secs(1));
    Ok(o)
}

fn run(o: &Options, launch: &Launch) -> hyb_dist::Result<()> {
    let id: Vec<u8> = (0..128u8).map(|i| i.wrapping_mul(37)).collect();
    let (group, got) = hyb_dist::rendezvous(launch, &o.config, || Ok(id.clone()))?;
    assert_eq!(got, id, "every rank receives rank 0's id");
    let say = |line: String| {
        if !o.quiet {
            println!("{line}");
        }
    };
    say(format!("rank {}: joined", launch.rank));
    for step in 0..o.steps {
        group.check()?;
        if o.exit_at == Some(step) {
            std::process::exit(9);
        }
        while o.hang_at == Some(step) {
            std::thread::sleep(Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_millis(o.step_ms));
        group.set_progress(step + 1);
        group.barrier()?;
        say(format!("rank {}: step {}", launch.rank, step + 1));
    }
    Ok(())
}

fn main() {
    let (options, launch) = match options().and_then(|o| Launch::from_env().map(|l| (o, l)).map_err(|e| e.to_string()))
    {
        Ok(both) => both,
        Err(e) => {
            eprintln!("hyb-dist-rank: {e}");
            std::process::exit(2);
        }
    };
    match run(&options, &launch) {
        Ok(()) if options.quiet => {}
        Ok(()) => println!("rank {}: done", launch.rank),
        Err(e) => {
            eprintln!("rank {}: {e}", launch.rank);
            std::process::exit(1);
        }
    }
}
