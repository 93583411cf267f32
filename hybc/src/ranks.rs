//! `hybc train --gpus N`: this process starts N copies of the same command, one rank per
//! GPU of this host (torchrun's variables, `hyb_dist::spawn`), each given the run
//! directory this process chose, and supervises them; and the launch a rank reads from
//! its environment (from `--gpus`, torchrun or Slurm).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyb_dist::{Launch, Source};

/// This process's launch when a launcher (or `--gpus`) started it as a rank; `None` for
/// a process of its own. Inconsistent variables are a usage error.
pub fn from_env() -> Result<Option<Launch>, String> {
    let launch = Launch::from_env().map_err(|e| e.to_string())?;
    Ok((launch.source != Source::Single).then_some(launch))
}

/// How long the other ranks may take to stop on their own once one has failed.
const GRACE: Duration = Duration::from_secs(60);

/// The command line of each rank: this one without `--gpus`, with `--out` where none
/// was given.
fn rank_args(args: &[String], out: &Path) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip = false;
    for arg in args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if arg == "--gpus" {
            skip = true;
        } else if !arg.starts_with("--gpus=") {
            kept.push(arg.clone());
        }
    }
    if !kept.iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        kept.extend(["--out".to_string(), out.display().to_string()]);
    }
    kept
}

/// Starts `gpus` ranks of this command (its arguments after the program) writing to
/// `out`, and waits for them; `interrupted` says whether a signal asked them to stop
/// (each rank got it too: they stop together at a checkpoint).
pub fn spawn(gpus: usize, out: &Path, interrupted: impl Fn() -> Option<u8>) -> Result<(), super::Failure> {
    let usage = |e: hyb_dist::Error| super::Failure::Usage(e.to_string());
    let visible = hyb_runtime::cuda::device_count();
    let port = hyb_dist::spawn::free_port().map_err(usage)?;
    let envs = hyb_dist::spawn::children(gpus, visible, port).map_err(usage)?;
    let program: PathBuf = std::env::current_exe()
        .map_err(|e| super::Failure::Usage(format!("cannot find this program to start its ranks: {e}")))?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("starting {gpus} ranks on this host's GPUs, writing to {}", out.display());
    match hyb_dist::spawn::supervise(&program, &rank_args(&args, out), &envs, GRACE) {
        Ok(()) => Ok(()),
        Err(_) if interrupted().is_some() => Err(super::Failure::Stopped(interrupted().unwrap())),
        Err(e) => {
            eprintln!("error: {e}");
            Err(super::Failure::User)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_run_the_command_without_gpus_and_with_the_run_directory() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let out = Path::new("runs/m-2");
        assert_eq!(
            rank_args(&args(&["train", "m.hyb", "--gpus", "4", "--steps", "9"]), out),
            args(&["train", "m.hyb", "--steps", "9", "--out", "runs/m-2"])
        );
        assert_eq!(
            rank_args(&args(&["train", "--gpus=2", "m.hyb", "--out", "x"]), out),
            args(&["train", "m.hyb", "--out", "x"])
        );
    }
}
