//! Who this process is in a run of several: its rank, the world size, its place on the
//! host and where rank 0 listens, read from the variables torchrun sets (`RANK`,
//! `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`) or,
//! when those are absent, from Slurm's (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`,
//! `SLURM_TASKS_PER_NODE` with `SLURM_NODEID`, the first host of `SLURM_JOB_NODELIST`,
//! a port from `SLURM_JOB_ID`). With neither, one process. Every inconsistency is an
//! error naming the variables and their values.
//!
//! torchrun's variables win over Slurm's without complaint: torchrun started by `srun`
//! once per node sees `SLURM_PROCID` = the node's index, which is not a worker's rank.

use crate::error::{Error, Result};
use crate::slurm;

/// Where rank 0 listens for the rendezvous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    pub host: String,
    pub port: u16,
}

/// Which launcher's variables the values came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// No launcher: one process.
    Single,
    /// torchrun's names (also set by `hybc --gpus N` for its children).
    Torchrun,
    /// Slurm's names (`srun`).
    Slurm,
}

/// This process's place in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    /// The processes on this host, where the launcher says.
    pub local_world: Option<usize>,
    /// `None` for a single process.
    pub master: Option<Master>,
    pub source: Source,
}

impl Launch {
    /// One process: rank 0 of 1.
    pub fn single() -> Launch {
        Launch { rank: 0, world: 1, local_rank: 0, local_world: Some(1), master: None, source: Source::Single }
    }

    /// This process's launch, from its environment.
    pub fn from_env() -> Result<Launch> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// The launch the variables `get` returns describe (a pure function, for tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Launch> {
        let vars = Vars(&get);
        // The master is read once the ranks are known to be consistent.
        let launch = if vars.any(&["RANK", "WORLD_SIZE"]) {
            torchrun(&vars)?
        } else if vars.any(&["SLURM_PROCID"]) && vars.any(&["SLURM_NTASKS"]) {
            slurm(&vars)?
        } else if vars.any(&["LOCAL_RANK"]) {
            return Err(Error::Launch("LOCAL_RANK is set but RANK and WORLD_SIZE are not: set all three".into()));
        } else {
            Launch::single()
        };
        launch.check()?;
        let master = master(&vars, launch.world, launch.source)?;
        Ok(Launch { master, ..launch })
    }

    fn check(&self) -> Result<()> {
        let names = self.names();
        if self.world == 0 {
            return Err(Error::Launch(format!("{}=0: a run needs at least one process", names.world)));
        }
        if self.rank >= self.world {
            return Err(Error::Launch(format!(
                "{}={} is not below {}={}: ranks count from 0",
                names.rank, self.rank, names.world, self.world
            )));
        }
        if let Some(local) = self.local_world {
            if local == 0 || local > self.world {
                return Err(Error::Launch(format!(
                    "{}={local} must be between 1 and {}={}",
                    names.local_world, names.world, self.world
                )));
            }
            if self.local_rank >= local {
                return Err(Error::Launch(format!(
                    "{}={} is not below {}={local}",
                    names.local_rank, self.local_rank, names.local_world
                )));
            }
        }
        Ok(())
    }

    fn names(&self) -> Names {
        match self.source {
            Source::Slurm => Names {
                rank: "SLURM_PROCID",
                world: "SLURM_NTASKS",
                local_rank: "SLURM_LOCALID",
                local_world: "SLURM_TASKS_PER_NODE",
            },
            _ => Names { rank: "RANK", world: "WORLD_SIZE", local_rank: "LOCAL_RANK", local_world: "LOCAL_WORLD_SIZE" },
        }
    }

    /// `rank 3 of 8 (local 1 of 4), rendezvous at node01:29500`.
    pub fn describe(&self) -> String {
        let local = match self.local_world {
            Some(n) => format!("local {} of {n}", self.local_rank),
            None => format!("local {}", self.local_rank),
        };
        let at = self.master.as_ref().map(|m| format!(", rendezvous at {}:{}", m.host, m.port)).unwrap_or_default();
        format!("rank {} of {} ({local}){at}", self.rank, self.world)
    }
}

struct Names {
    rank: &'static str,
    world: &'static str,
    local_rank: &'static str,
    local_world: &'static str,
}

/// The environment through a lookup function.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.text(n).is_some())
    }

    fn number(&self, name: &str) -> Result<Option<usize>> {
        let Some(text) = self.text(name) else { return Ok(None) };
        text.parse::<usize>()
            .map(Some)
            .map_err(|_| Error::Launch(format!("{name}={text:?} is not a whole number (0, 1, 2, …)")))
    }

    fn required(&self, name: &str, why: &str) -> Result<usize> {
        self.number(name)?.ok_or_else(|| Error::Launch(format!("{name} is not set: {why}")))
    }
}

fn torchrun(vars: &Vars) -> Result<Launch> {
    let rank = vars.required("RANK", "WORLD_SIZE is set; torchrun sets both")?;
    let world = vars.required("WORLD_SIZE", "RANK is set; torchrun sets both")?;
    let local_rank = match vars.number("LOCAL_RANK")? {
        Some(local) => local,
        None if world == 1 => 0,
        None => {
            return Err(Error::Launch(format!(
                "LOCAL_RANK is not set: which GPU of its host rank {rank} uses is unknown (torchrun and `hybc --gpus` set it)"
            )));
        }
    };
    let local_world = vars.number("LOCAL_WORLD_SIZE")?;
    Ok(Launch { rank, world, local_rank, local_world, master: None, source: Source::Torchrun })
}

fn slurm(vars: &Vars) -> Result<Launch> {
    let rank = vars.required("SLURM_PROCID", "")?;
    let world = vars.required("SLURM_NTASKS", "")?;
    let local_rank = vars.required("SLURM_LOCALID", "srun sets it for every task; is this process started by srun?")?;
    let node = vars.number("SLURM_NODEID")?.unwrap_or(0);
    let local_world = match vars.text("SLURM_TASKS_PER_NODE") {
        Some(spec) => Some(slurm::tasks_on_node(&spec, node).ok_or_else(|| {
            Error::Launch(format!("SLURM_TASKS_PER_NODE={spec:?} does not say how many tasks node {node} has"))
        })?),
        None => vars.number("SLURM_NTASKS_PER_NODE")?,
    };
    Ok(Launch { rank, world, local_rank, local_world, master: None, source: Source::Slurm })
}

fn master(vars: &Vars, world: usize, source: Source) -> Result<Option<Master>> {
    if world <= 1 {
        return Ok(None);
    }
    let host = match vars.text("MASTER_ADDR") {
        Some(host) => host,
        None => slurm_host(vars, source)?,
    };
    let port = match (vars.text("MASTER_PORT"), vars.number("SLURM_JOB_ID")) {
        (Some(text), _) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Launch(format!("MASTER_PORT={text:?} is not a port (1 to 65535)")))?,
        (None, Ok(Some(job))) if source == Source::Slurm => slurm::port_for_job(job as u64),
        _ => return Err(Error::Launch("MASTER_PORT is not set: the port rank 0 listens on is unknown".into())),
    };
    Ok(Some(Master { host, port }))
}

fn slurm_host(vars: &Vars, source: Source) -> Result<String> {
    let missing = || {
        Error::Launch("MASTER_ADDR is not set: the host of rank 0 is unknown (torchrun sets it; under Slurm it defaults to the first host of SLURM_JOB_NODELIST)".into())
    };
    if source != Source::Slurm {
        return Err(missing());
    }
    let list = vars.text("SLURM_JOB_NODELIST").or_else(|| vars.text("SLURM_NODELIST")).ok_or_else(missing)?;
    slurm::first_host(&list)
        .ok_or_else(|| Error::Launch(format!("SLURM_JOB_NODELIST={list:?} is not a node list; set MASTER_ADDR")))
}

#[cfg(test)]
#[path = "launch_tests.rs"]
mod tests;
