//! The crate's integration tests: the rendezvous and the watchdog between threads of
//! this process, faults between real processes (`hyb-dist-rank`, killed, stopped or
//! hung), the collectives' reduction over threads, and NCCL where a GPU is here.

mod collective;
mod faults;
mod rendezvous;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use hyb_dist::{Config, Group, Launch, Master, Source};

/// Short timeouts, no exit (these ranks are threads of the test process).
pub fn config() -> Config {
    Config {
        rendezvous: Duration::from_secs(2),
        heartbeat_every: Duration::from_millis(50),
        dead_after: Duration::from_secs(1),
        hang_after: None,
        barrier: Duration::from_secs(2),
        exit_after: None,
    }
}

pub fn launch(rank: usize, world: usize, port: u16) -> Launch {
    let master = Master { host: "127.0.0.1".into(), port };
    Launch { rank, world, local_rank: rank, local_world: Some(world), master: Some(master), source: Source::Torchrun }
}

/// The id rank 0 hands out in these tests.
pub fn id() -> Vec<u8> {
    (0..128u8).map(|i| i ^ 0x5a).collect()
}

/// Runs the given ranks of a world of `world` as threads (`ranks[i]` launched as that
/// rank; rank 0 over a listener on a port the system chose), each calling `body` with
/// the rendezvous' outcome; their results in the order of `ranks`.
pub fn ranks<T: Send>(
    world: usize,
    ranks: &[usize],
    config: &Config,
    body: impl Fn(usize, hyb_dist::Result<(Group, Vec<u8>)>) -> T + Sync,
) -> Vec<T> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let deadline = Instant::now() + config.rendezvous;
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranks
            .iter()
            .map(|&rank| {
                let (listener, body) = (&listener, &body);
                scope.spawn(move || {
                    let joined = if rank == 0 {
                        hyb_dist::rendezvous::lead(listener, world, config, deadline, || Ok(id()))
                    } else {
                        hyb_dist::rendezvous(&launch(rank, world, port), config, || unreachable!("rank 0 makes the id"))
                    };
                    body(rank, joined)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The error text of a failed rendezvous or operation.
pub fn text<T>(result: hyb_dist::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}
