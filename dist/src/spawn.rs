//! `--gpus N` on one host: N processes of the same program, each given torchrun's
//! variables (`RANK` = `LOCAL_RANK` = i, `WORLD_SIZE` = `LOCAL_WORLD_SIZE` = N,
//! `MASTER_ADDR` = 127.0.0.1, a free `MASTER_PORT`), each using GPU i of those the
//! parent sees; then supervised: when one fails, the others get a grace period to stop
//! on their own (their watchdog sees it), then are killed; the error names every
//! rank's end.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The variables of each of `gpus` ranks on this host, when the parent sees `visible`
/// GPUs and rank 0 listens on `port`.
pub fn children(gpus: usize, visible: usize, port: u16) -> Result<Vec<Vec<(String, String)>>> {
    if gpus == 0 {
        return Err(Error::Invalid("--gpus 0: give at least one GPU".into()));
    }
    if gpus > visible {
        return Err(Error::Invalid(format!(
            "--gpus {gpus}, but this process sees {visible} GPUs (CUDA_VISIBLE_DEVICES or the driver)"
        )));
    }
    let env = |rank: usize| {
        let pairs = [
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", gpus.to_string()),
            ("LOCAL_RANK", rank.to_string()),
            ("LOCAL_WORLD_SIZE", gpus.to_string()),
            ("MASTER_ADDR", "127.0.0.1".to_string()),
            ("MASTER_PORT", port.to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    Ok((0..gpus).map(env).collect())
}

/// A port no one listens on now (the system's choice; taken again by rank 0 an instant
/// later, which another program could race for: the rendezvous then says so).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::Rendezvous(format!("cannot find a free port on 127.0.0.1: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| Error::Rendezvous(format!("cannot find a free port: {e}")))
}

/// Starts `program args` once per variable set and waits for every one. Ok when all
/// succeed; else an error naming each rank's end, the first failure first.
pub fn supervise(program: &Path, args: &[String], envs: &[Vec<(String, String)>], grace: Duration) -> Result<()> {
    let mut children = Vec::new();
    for (rank, env) in envs.iter().enumerate() {
        let child = Command::new(program).args(args).envs(env.iter().map(|(k, v)| (k, v))).spawn();
        match child {
            Ok(child) => children.push(child),
            Err(e) => {
                kill_all(&mut children);
                return Err(Error::Launch(format!("cannot start rank {rank} ({}): {e}", program.display())));
            }
        }
    }
    let ends = wait_all(&mut children, grace);
    let mut failed: Vec<&(usize, ExitStatus, Instant)> = ends.iter().filter(|(_, s, _)| !s.success()).collect();
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_by_key(|(_, _, at)| *at);
    let words: Vec<String> =
        failed.iter().map(|(rank, status, _)| format!("rank {rank} {}", describe(status))).collect();
    Err(Error::Launch(format!("{} of {} ranks failed: {}", failed.len(), envs.len(), words.join("; "))))
}

/// Waits for every child; once one fails, the rest are killed after `grace`. Each
/// child's (rank, status, when it was seen to end).
fn wait_all(children: &mut [Child], grace: Duration) -> Vec<(usize, ExitStatus, Instant)> {
    let mut ends: Vec<Option<(ExitStatus, Instant)>> = vec![None; children.len()];
    let mut kill_at: Option<Instant> = None;
    while ends.iter().any(Option::is_none) {
        for (rank, child) in children.iter_mut().enumerate() {
            if ends[rank].is_some() {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                ends[rank] = Some((status, Instant::now()));
                if !status.success() && kill_at.is_none() {
                    kill_at = Some(Instant::now() + grace);
                }
            }
        }
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            kill_all(children);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ends.into_iter().enumerate().map(|(rank, end)| (rank, end.unwrap().0, end.unwrap().1)).collect()
}

fn kill_all(children: &mut [Child]) {
    for child in children {
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
    }
}

/// `exited with code 1`, `was killed by signal 9`.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended: {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_child_is_one_local_rank() {
        let envs = children(2, 4, 29_500).unwrap();
        let get = |rank: usize, key: &str| envs[rank].iter().find(|(k, _)| k == key).unwrap().1.clone();
        assert_eq!((get(0, "RANK"), get(1, "RANK"), get(1, "LOCAL_RANK")), ("0".into(), "1".into(), "1".into()));
        assert_eq!((get(1, "WORLD_SIZE"), get(1, "MASTER_PORT")), ("2".into(), "29500".into()));
        let launch = crate::Launch::from_vars(|name| envs[1].iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
        assert_eq!(launch.unwrap().describe(), "rank 1 of 2 (local 1 of 2), rendezvous at 127.0.0.1:29500");
        assert_eq!(
            children(3, 2, 1).unwrap_err().to_string(),
            "--gpus 3, but this process sees 2 GPUs (CUDA_VISIBLE_DEVICES or the driver)"
        );
        assert!(children(0, 2, 1).is_err());
    }

    #[test]
    fn supervision_names_the_failed_rank() {
        let sh = Path::new("/bin/sh");
        let envs = children(3, 3, 1).unwrap();
        let script = |s: &str| vec!["-c".to_string(), s.to_string()];
        assert_eq!(supervise(sh, &script("exit 0"), &envs, Duration::from_secs(1)), Ok(()));
        // Rank 1 fails at once; the others would run for a minute: killed after the grace.
        let started = Instant::now();
        let error = supervise(
            sh,
            &script(r#"if [ "$RANK" = 1 ]; then exit 7; fi; exec sleep 60"#),
            &envs,
            Duration::from_millis(200),
        );
        let message = error.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "killed after the grace");
        assert!(message.starts_with("launch: 3 of 3 ranks failed: rank 1 exited with code 7; rank "), "{message}");
        assert!(message.contains("was killed by signal 9"), "{message}");
    }
}
