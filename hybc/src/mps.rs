//! NVIDIA's Multi-Process Service (MPS) for a sweep's shards that share a GPU. Without
//! it the driver time-slices the processes' contexts, so two small runs on one GPU go no
//! faster than one; under MPS their kernels run on the GPU together (measured on an H200
//! with the GPU study's model: 4 runs at once 58K tokens/s time-sliced, 124K under MPS;
//! `runtime/benches/README.md`). `hybc sweep --jobs N` starts a control daemon of its own
//! (its pipe and log directories private to the sweep) when shards share a GPU, hands its
//! directories to the shards, and stops it when the shards are done; a server already
//! running (named by `CUDA_MPS_PIPE_DIRECTORY`, or at the default pipe) is used as is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The daemon's program, looked up on `PATH`.
pub const CONTROL: &str = "nvidia-cuda-mps-control";

/// Where a daemon started without `CUDA_MPS_PIPE_DIRECTORY` listens.
const DEFAULT_PIPE: &str = "/tmp/nvidia-mps";

/// What the shards of a sweep run under.
#[derive(Debug)]
pub enum Sharing {
    /// Every shard has a GPU of its own, or MPS was not wanted: nothing to do.
    NotNeeded,
    /// An MPS server already running (named by `CUDA_MPS_PIPE_DIRECTORY`, or at the
    /// default pipe): the shards reach it by themselves.
    Existing(String),
    /// A daemon this sweep started; stopped when dropped.
    Started(Daemon),
    /// Shards share a GPU, but no daemon could be started (the reason): they time-share.
    Unavailable(String),
}

impl Sharing {
    /// The line the sweep prints about it, if any.
    pub fn describe(&self) -> Option<String> {
        match self {
            Sharing::NotNeeded => None,
            Sharing::Existing(pipe) => Some(format!("shards share a GPU: under the MPS server at {pipe}")),
            Sharing::Started(daemon) => Some(format!(
                "shards share a GPU: started an MPS daemon for them (pipe {}; --no-mps to time-share instead)",
                daemon.pipe().display()
            )),
            Sharing::Unavailable(why) => Some(format!(
                "warning: shards share a GPU without MPS ({why}), so they take turns on it: \
                 expect little more than one run's speed in all"
            )),
        }
    }

    /// The environment a shard needs to reach the daemon.
    pub fn environment(&self) -> Vec<(&'static str, PathBuf)> {
        match self {
            Sharing::Started(daemon) => variables(&daemon.dir).to_vec(),
            _ => Vec::new(),
        }
    }
}

/// Whether some GPU of `devices` (a shard's each) holds more than one shard.
pub fn shared(devices: &[String]) -> bool {
    devices.iter().enumerate().any(|(i, d)| devices[..i].contains(d))
}

/// What shards placed on `devices` run under: a daemon of this sweep's when some share a
/// GPU and `wanted`, unless the user's own server is set in the environment.
pub fn for_shards(devices: &[String], wanted: bool) -> Sharing {
    if !wanted || !shared(devices) {
        return Sharing::NotNeeded;
    }
    if let Ok(pipe) = std::env::var("CUDA_MPS_PIPE_DIRECTORY") {
        return Sharing::Existing(pipe);
    }
    // A server started with the defaults (an administrator's), which clients find by itself.
    if Path::new(DEFAULT_PIPE).join("control").exists() {
        return Sharing::Existing(DEFAULT_PIPE.into());
    }
    let dir = std::env::temp_dir().join(format!("hyb-mps-{}", std::process::id()));
    match Daemon::start(&dir) {
        Ok(daemon) => Sharing::Started(daemon),
        Err(why) => Sharing::Unavailable(why),
    }
}

/// An MPS control daemon with its pipe and log under `dir`; `quit` when dropped.
#[derive(Debug)]
pub struct Daemon {
    dir: PathBuf,
}

impl Daemon {
    /// Starts `nvidia-cuda-mps-control -d` with its pipe and log under `dir`; on failure
    /// `dir` is removed and nothing is left to stop.
    fn start(dir: &Path) -> Result<Daemon, String> {
        let started = ["pipe", "log"]
            .iter()
            .try_for_each(|sub| std::fs::create_dir_all(dir.join(sub)))
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))
            .and_then(|()| match control(dir).arg("-d").status() {
                Ok(status) if status.success() => Ok(()),
                Ok(status) => Err(format!("`{CONTROL} -d` {status}")),
                Err(e) => Err(format!("`{CONTROL}` cannot be run: {e}")),
            });
        match started {
            Ok(()) => Ok(Daemon { dir: dir.to_path_buf() }),
            Err(why) => {
                let _ = std::fs::remove_dir_all(dir);
                Err(why)
            }
        }
    }

    fn pipe(&self) -> PathBuf {
        self.dir.join("pipe")
    }
}

/// The variables that point the daemon and its clients at the pipe and log under `dir`.
fn variables(dir: &Path) -> [(&'static str, PathBuf); 2] {
    [("CUDA_MPS_PIPE_DIRECTORY", dir.join("pipe")), ("CUDA_MPS_LOG_DIRECTORY", dir.join("log"))]
}

/// The control program, pointed at the pipe and log under `dir`.
fn control(dir: &Path) -> Command {
    let mut command = Command::new(CONTROL);
    command.envs(variables(dir));
    command
}

impl Drop for Daemon {
    fn drop(&mut self) {
        use std::io::Write;
        let child = control(&self.dir).stdin(Stdio::piped()).stdout(Stdio::null()).spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"quit\n");
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_a_gpu_when_one_holds_two() {
        let gpus = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!shared(&gpus(&["0"])));
        assert!(!shared(&gpus(&["0", "1", "2"])));
        assert!(shared(&gpus(&["0", "1", "0"])));
        assert!(matches!(for_shards(&gpus(&["0", "1"]), true), Sharing::NotNeeded));
        assert!(matches!(for_shards(&gpus(&["0", "0"]), false), Sharing::NotNeeded));
    }
}
