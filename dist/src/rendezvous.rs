//! The rendezvous over TCP: rank 0 listens on `MASTER_PORT` (every interface), the
//! others connect to `MASTER_ADDR:MASTER_PORT`, retrying until the deadline; once all
//! have said hello, rank 0 sends each the opaque id (NCCL's 128-byte unique id), waits
//! for every acknowledgement, and says go. Each wait has the rendezvous' deadline, and
//! a rendezvous that fails names the ranks that did not arrive, on every rank still
//! connected (rank 0 tells them before it gives up).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, ranks};
use crate::group::{Config, Group};
use crate::health::seconds;
use crate::launch::{Launch, Master};
use crate::wire::{Message, timed_out};

/// Joins the run `launch` describes: returns the group and rank 0's id, which
/// `make_id` makes (called on rank 0 only, once every rank has arrived).
pub fn rendezvous(
    launch: &Launch,
    config: &Config,
    make_id: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(Group, Vec<u8>)> {
    let deadline = Instant::now() + config.rendezvous;
    if launch.world == 1 {
        return Ok((Group::start(0, 1, config.clone(), Vec::new())?, make_id()?));
    }
    let master = launch.master.as_ref().ok_or_else(|| Error::Launch("no MASTER_ADDR for a run of several".into()))?;
    if launch.rank == 0 {
        let listener = listen(master)?;
        lead(&listener, launch.world, config, deadline, make_id)
    } else {
        follow(master, launch, config, deadline)
    }
}

/// Rank 0's socket, on every interface at the master's port.
pub fn listen(master: &Master) -> Result<TcpListener> {
    let any = if master.host.parse::<std::net::Ipv6Addr>().is_ok() { "::" } else { "0.0.0.0" };
    TcpListener::bind((any, master.port)).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::AddrInUse {
            ": another program (or run) holds it; choose another MASTER_PORT"
        } else {
            ""
        };
        Error::Rendezvous(format!("rank 0 cannot listen on port {}: {e}{hint}", master.port))
    })
}

/// Rank 0's side over a listener already bound (tests bind port 0 first).
pub fn lead(
    listener: &TcpListener,
    world: usize,
    config: &Config,
    deadline: Instant,
    make_id: impl FnOnce() -> Result<Vec<u8>>,
) -> Result<(Group, Vec<u8>)> {
    let mut peers: Vec<Option<TcpStream>> = (0..world).map(|_| None).collect();
    let at = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    if let Err(e) = gather(listener, &mut peers, deadline) {
        let missing: Vec<usize> = (1..world).filter(|r| peers[*r].is_none()).collect();
        let (culprits, what) = match e {
            Gather::TimedOut => (
                missing.clone(),
                format!(
                    "timed out after {} at {at}: {} of {world} did not arrive (is every rank started, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE?)",
                    seconds(config.rendezvous),
                    ranks(&missing)
                ),
            ),
            Gather::Refused(rank, message) => (vec![rank], message),
        };
        return Err(abort_all(&mut peers, &culprits, what));
    }
    let id = match make_id() {
        Ok(id) => id,
        Err(e) => return Err(abort_all(&mut peers, &[0], format!("rank 0 could not make the id: {e}"))),
    };
    for (rank, stream) in peers.iter_mut().enumerate().skip(1) {
        let stream = stream.as_mut().expect("gathered");
        let acked = Message::Id(id.clone()).write(stream).and_then(|_| read_before(stream, deadline));
        if !matches!(acked, Ok(Message::Ack { rank: r }) if r as usize == rank) {
            let what = format!("rank {rank} did not acknowledge the id within {}", seconds(config.rendezvous));
            return Err(abort_all(&mut peers, &[rank], what));
        }
    }
    let mut streams = Vec::new();
    for (rank, stream) in peers.into_iter().enumerate().skip(1) {
        let mut stream = stream.expect("gathered");
        let _ = Message::Go.write(&mut stream);
        streams.push((rank, stream));
    }
    Ok((Group::start(0, world, config.clone(), streams)?, id))
}

enum Gather {
    TimedOut,
    /// A rank (or `0` for rank 0's own trouble) refused, and why.
    Refused(usize, String),
}

/// Accepts connections until every rank has said hello or the deadline passes.
fn gather(
    listener: &TcpListener,
    peers: &mut [Option<TcpStream>],
    deadline: Instant,
) -> std::result::Result<(), Gather> {
    let world = peers.len();
    listener.set_nonblocking(true).map_err(|e| Gather::Refused(0, format!("rank 0's socket: {e}")))?;
    while peers.iter().skip(1).any(Option::is_none) {
        if Instant::now() >= deadline {
            return Err(Gather::TimedOut);
        }
        let (mut stream, from) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if timed_out(&e) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(Gather::Refused(0, format!("rank 0 could not accept a connection: {e}"))),
        };
        let hello = stream
            .set_nonblocking(false)
            .and_then(|_| read_before(&mut stream, deadline.min(Instant::now() + Duration::from_secs(2))));
        // Anything but a greeting (a port scan, another program) is dropped.
        let Ok(Message::Hello { rank, world: theirs, host }) = hello else { continue };
        let (rank, theirs) = (rank as usize, theirs as usize);
        let refusal = if theirs != world {
            Some(format!(
                "rank {rank} (on {host}, {from}) was launched with WORLD_SIZE={theirs}, rank 0 with {world}: every rank needs the same"
            ))
        } else if rank == 0 || rank >= world || peers[rank].is_some() {
            Some(format!(
                "two processes say they are rank {rank} (the second on {host}, {from}): every rank needs its own RANK"
            ))
        } else {
            None
        };
        if let Some(what) = refusal {
            let _ = Message::Abort { ranks: vec![rank as u32], what: what.clone() }.write(&mut stream);
            return Err(Gather::Refused(rank, what));
        }
        peers[rank] = Some(stream);
    }
    Ok(())
}

/// Tells every connected rank why the rendezvous failed; the error for rank 0.
fn abort_all(peers: &mut [Option<TcpStream>], culprits: &[usize], what: String) -> Error {
    let abort = Message::Abort { ranks: culprits.iter().map(|r| *r as u32).collect(), what: what.clone() };
    for stream in peers.iter_mut().flatten() {
        let _ = abort.write(stream);
    }
    Error::Rendezvous(what)
}

/// Reads one message with the time left before `deadline`.
fn read_before(stream: &mut TcpStream, deadline: Instant) -> io::Result<Message> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    stream.set_read_timeout(Some(left))?;
    Message::read(stream)
}

/// Another rank's side: connect (retrying), say hello, take the id, acknowledge, go.
fn follow(master: &Master, launch: &Launch, config: &Config, deadline: Instant) -> Result<(Group, Vec<u8>)> {
    let rank = launch.rank;
    let mut stream = connect(master, rank, config, deadline)?;
    // Rank 0 names the missing ranks when its own wait ends: wait a little longer.
    let patience = config.rendezvous + config.dead_after;
    let deadline = deadline + config.dead_after;
    let host = hostname();
    let hello = Message::Hello { rank: rank as u32, world: launch.world as u32, host };
    let lost = |e: io::Error| {
        let why = if timed_out(&e) {
            format!(
                "rank 0 did not complete it within {}: some ranks did not arrive (rank 0's log names them)",
                seconds(patience)
            )
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            "rank 0 closed the connection before the rendezvous completed (it stopped, or refused this rank: its log says why)"
                .to_string()
        } else {
            format!("the connection to rank 0 failed: {e}")
        };
        Error::Rendezvous(format!("rank {rank}: {why}"))
    };
    hello.write(&mut stream).map_err(lost)?;
    let id = match read_before(&mut stream, deadline).map_err(lost)? {
        Message::Id(id) => id,
        other => return Err(unexpected(rank, other)),
    };
    Message::Ack { rank: rank as u32 }.write(&mut stream).map_err(lost)?;
    match read_before(&mut stream, deadline).map_err(lost)? {
        Message::Go => {}
        other => return Err(unexpected(rank, other)),
    }
    Ok((Group::start(rank, launch.world, config.clone(), vec![(0, stream)])?, id))
}

fn unexpected(rank: usize, message: Message) -> Error {
    match message {
        Message::Abort { what, .. } => Error::Rendezvous(what),
        other => Error::Rendezvous(format!("rank {rank}: rank 0 sent {other:?} during the rendezvous")),
    }
}

/// Connects to rank 0, retrying refused connections and failed lookups until the deadline.
fn connect(master: &Master, rank: usize, config: &Config, deadline: Instant) -> Result<TcpStream> {
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match (master.host.as_str(), master.port).to_socket_addrs() {
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                for addr in addrs {
                    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
                    match TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(2))) {
                        Ok(stream) => return Ok(stream),
                        Err(e) => last = e.to_string(),
                    }
                }
            }
            Err(e) => last = format!("cannot resolve {}: {e}", master.host),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Rendezvous(format!(
        "rank {rank} could not reach rank 0 at {}:{} within {} (last error: {last}): is rank 0 running, and are MASTER_ADDR and MASTER_PORT the same for every rank?",
        master.host,
        master.port,
        seconds(config.rendezvous)
    )))
}

/// This host's name, for messages.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "an unnamed host".into())
}
