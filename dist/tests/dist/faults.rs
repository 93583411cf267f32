//! Faults between real processes: ranks of `hyb-dist-rank` on localhost, one of them
//! killed, stopped or hung; the others must stop within the timeouts, naming it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// A rank's process, its stdout lines arriving on a channel.
struct Rank {
    child: Child,
    lines: Receiver<String>,
}

fn start(world: usize, port: u16, args: &[&str], per_rank: impl Fn(usize) -> Vec<String>) -> Vec<Rank> {
    (0..world)
        .map(|rank| {
            let env = &hyb_dist::spawn::children(world, world, port).unwrap()[rank];
            let mut child = Command::new(env!("CARGO_BIN_EXE_hyb-dist-rank"))
                .args(args)
                .args(per_rank(rank))
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (tx, lines) = mpsc::channel();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            std::thread::spawn(move || stdout.lines().map_while(Result::ok).try_for_each(|l| tx.send(l)));
            Rank { child, lines }
        })
        .collect()
}

impl Rank {
    /// Waits for a line of stdout equal to `line`.
    fn wait_for(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while let Ok(got) = self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            if got == line {
                return;
            }
        }
        panic!("no line {line:?} within 15 s");
    }

    /// Waits for the process to end within `limit`: its exit code and stderr.
    fn end(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rank still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (status.code(), stderr)
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("/bin/sh").args(["-c", &format!("kill {name} {}", child.id())]).status().unwrap();
    assert!(status.success(), "kill {name}");
}

const LONG_RUN: [&str; 8] = ["--steps", "100000", "--step-ms", "20", "--dead-after", "1", "--exit-after", "2"];

#[test]
fn ranks_finish_together() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let ranks = start(3, port, &["--steps", "5", "--step-ms", "10"], |_| Vec::new());
    for (rank, process) in ranks.into_iter().enumerate() {
        process.wait_for(&format!("rank {rank}: done"));
        assert_eq!(process.end(Duration::from_secs(10)), (Some(0), String::new()));
    }
}

#[test]
fn a_killed_rank_stops_the_others_fast() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let mut ranks = start(3, port, &LONG_RUN, |_| Vec::new());
    ranks[2].wait_for("rank 2: step 3");
    let mut victim = ranks.pop().unwrap();
    victim.child.kill().unwrap();
    let killed_at = Instant::now();
    let _ = victim.child.wait();
    for (rank, process) in ranks.into_iter().enumerate() {
        let (code, stderr) = process.end(Duration::from_secs(10));
        assert_eq!(code, Some(1), "rank {rank}: {stderr}");
        let expected =
            format!("rank {rank}: rank 2 stopped: its connection closed (the process exited or was killed)\n");
        assert_eq!(stderr, expected);
    }
    assert!(killed_at.elapsed() < Duration::from_secs(3), "stopped within {:?}", killed_at.elapsed());
}

#[test]
fn a_stopped_rank_is_declared_dead_after_its_silence() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let mut ranks = start(3, port, &LONG_RUN, |_| Vec::new());
    ranks[1].wait_for("rank 1: step 3");
    signal(&ranks[1].child, "-STOP");
    let stopped_at = Instant::now();
    let mut victim = ranks.remove(1);
    for process in ranks {
        let (code, stderr) = process.end(Duration::from_secs(10));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(": rank 1 stopped answering: nothing heard for 1.0 s (the process is stopped"),
            "{stderr}"
        );
    }
    let took = stopped_at.elapsed();
    assert!(took > Duration::from_millis(500) && took < Duration::from_secs(4), "stopped within {took:?}");
    victim.child.kill().unwrap();
    let _ = victim.child.wait();
}

#[test]
fn a_hung_rank_is_named_and_ended() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let hang = |rank: usize| if rank == 1 { vec!["--hang-at".into(), "3".into()] } else { Vec::new() };
    let mut args = LONG_RUN.to_vec();
    args.extend(["--hang-after", "1", "--exit-after", "1"]);
    let ranks = start(3, port, &args, hang);
    let started = Instant::now();
    let mut ends: Vec<(Option<i32>, String)> = ranks.into_iter().map(|r| r.end(Duration::from_secs(15))).collect();
    let expected = "rank 1 made no progress for 1.";
    let (hung_code, hung_stderr) = ends.remove(1);
    // The hung rank's main loop never returns: its watchdog ends it.
    assert_eq!(hung_code, Some(hyb_dist::EXIT_PEER_FAILED), "{hung_stderr}");
    assert!(hung_stderr.starts_with(&format!("hyb-dist: rank 1: {expected}")), "{hung_stderr}");
    assert!(hung_stderr.ends_with("(at step 3; others reached 4): it hangs; stopping this rank\n"), "{hung_stderr}");
    for (code, stderr) in ends {
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_spawner_runs_a_world_of_the_same_program() {
    let port = hyb_dist::spawn::free_port().unwrap();
    let envs = hyb_dist::spawn::children(2, 2, port).unwrap();
    let args: Vec<String> = ["--steps", "3", "--step-ms", "1", "--quiet", "1"].map(String::from).to_vec();
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_hyb-dist-rank"));
    hyb_dist::spawn::supervise(program, &args, &envs, Duration::from_secs(1)).unwrap();
    let args: Vec<String> = ["--steps", "3", "--exit-at", "1", "--quiet", "1"].map(String::from).to_vec();
    let error = hyb_dist::spawn::supervise(program, &args, &envs, Duration::from_secs(5)).unwrap_err();
    assert!(error.to_string().starts_with("launch: 2 of 2 ranks failed: rank "), "{error}");
    assert!(error.to_string().contains("exited with code 9"), "{error}");
}
