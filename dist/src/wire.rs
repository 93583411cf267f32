//! The control plane's messages over TCP: a tag byte, a little-endian u32 length, the
//! payload. Small and few (the rendezvous, heartbeats, barriers, aborts); the gradients
//! never travel here.

use std::io::{self, Read, Write};

/// What opens a connection, so a stray client (a port scan, another program on the
/// port) is told apart from a rank.
pub const MAGIC: &[u8; 12] = b"hyb-dist/v1\0";

/// The largest payload read (an id, a failure's text).
const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A rank joins: who it is and the world it was launched into.
    Hello { rank: u32, world: u32, host: String },
    /// Rank 0's opaque id (NCCL's unique id).
    Id(Vec<u8>),
    /// A rank has the id.
    Ack { rank: u32 },
    /// Everyone acknowledged: the run starts.
    Go,
    /// Alive, with the sender's progress counter.
    Heartbeat { progress: u64 },
    /// Stop: `ranks` failed, as `what` says.
    Abort { ranks: Vec<u32>, what: String },
    /// A rank reached barrier `epoch`.
    Arrive { epoch: u64 },
    /// Everyone reached barrier `epoch`.
    Release { epoch: u64 },
    /// The sender is finishing cleanly: its connection closing is no failure.
    Bye,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

impl Message {
    fn encode(&self) -> (u8, Vec<u8>) {
        let mut p = Vec::new();
        let tag = match self {
            Message::Hello { rank, world, host } => {
                p.extend(MAGIC);
                p.extend(rank.to_le_bytes());
                p.extend(world.to_le_bytes());
                put_str(&mut p, host);
                1
            }
            Message::Id(bytes) => {
                p.extend(bytes);
                2
            }
            Message::Ack { rank } => {
                p.extend(rank.to_le_bytes());
                3
            }
            Message::Go => 4,
            Message::Heartbeat { progress } => {
                p.extend(progress.to_le_bytes());
                5
            }
            Message::Abort { ranks, what } => {
                p.extend((ranks.len() as u32).to_le_bytes());
                ranks.iter().for_each(|r| p.extend(r.to_le_bytes()));
                put_str(&mut p, what);
                6
            }
            Message::Arrive { epoch } => {
                p.extend(epoch.to_le_bytes());
                7
            }
            Message::Release { epoch } => {
                p.extend(epoch.to_le_bytes());
                8
            }
            Message::Bye => 9,
        };
        (tag, p)
    }

    /// Writes the message as one frame.
    pub fn write(&self, to: &mut impl Write) -> io::Result<()> {
        let (tag, payload) = self.encode();
        let mut frame = Vec::with_capacity(5 + payload.len());
        frame.push(tag);
        frame.extend((payload.len() as u32).to_le_bytes());
        frame.extend(payload);
        to.write_all(&frame)?;
        to.flush()
    }

    /// Reads one frame; `InvalidData` for anything that is not one of ours.
    pub fn read(from: &mut impl Read) -> io::Result<Message> {
        let mut head = [0u8; 5];
        from.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
        if len > MAX_PAYLOAD {
            return Err(bad(format!("a frame of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload)?;
        decode(head[0], &payload)
    }
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not a hyb-dist message: {what}"))
}

/// A cursor over a payload.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("a short payload".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn string(&mut self) -> io::Result<String> {
        let len = self.u32()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| bad("text that is not UTF-8".into()))
    }
}

fn decode(tag: u8, payload: &[u8]) -> io::Result<Message> {
    let mut c = Cursor(payload);
    let message = match tag {
        1 => {
            if c.take(MAGIC.len())? != MAGIC {
                return Err(bad("a greeting without the magic".into()));
            }
            Message::Hello { rank: c.u32()?, world: c.u32()?, host: c.string()? }
        }
        2 => Message::Id(c.take(payload.len())?.to_vec()),
        3 => Message::Ack { rank: c.u32()? },
        4 => Message::Go,
        5 => Message::Heartbeat { progress: c.u64()? },
        6 => {
            let n = c.u32()? as usize;
            let ranks = (0..n.min(MAX_PAYLOAD / 4)).map(|_| c.u32()).collect::<io::Result<_>>()?;
            Message::Abort { ranks, what: c.string()? }
        }
        7 => Message::Arrive { epoch: c.u64()? },
        8 => Message::Release { epoch: c.u64()? },
        9 => Message::Bye,
        other => return Err(bad(format!("tag {other}"))),
    };
    if !c.0.is_empty() {
        return Err(bad(format!("{} bytes after a message of tag {tag}", c.0.len())));
    }
    Ok(message)
}

/// Whether an I/O error is a read timeout (the platforms differ in the kind).
pub fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let messages = [
            Message::Hello { rank: 3, world: 8, host: "node-ü".into() },
            Message::Id((0..128).collect()),
            Message::Ack { rank: 7 },
            Message::Go,
            Message::Heartbeat { progress: u64::MAX - 1 },
            Message::Abort { ranks: vec![2, 5], what: "stopped".into() },
            Message::Arrive { epoch: 9 },
            Message::Release { epoch: 9 },
            Message::Bye,
        ];
        let mut bytes = Vec::new();
        for m in &messages {
            m.write(&mut bytes).unwrap();
        }
        let mut reader = &bytes[..];
        for m in &messages {
            assert_eq!(&Message::read(&mut reader).unwrap(), m);
        }
        assert!(reader.is_empty());
    }

    #[test]
    fn strangers_are_refused() {
        let read = |bytes: &[u8]| Message::read(&mut &bytes[..]).unwrap_err();
        assert_eq!(read(b"GET / HTTP/1.1\r\n\r\n").kind(), io::ErrorKind::InvalidData);
        let mut hello = Vec::new();
        Message::Hello { rank: 1, world: 2, host: "h".into() }.write(&mut hello).unwrap();
        hello[5] = b'X';
        assert!(read(&hello).to_string().contains("without the magic"));
        assert_eq!(read(&[5, 8, 0, 0, 0, 1]).kind(), io::ErrorKind::UnexpectedEof);
        assert!(read(&[4, 1, 0, 0, 0, 0]).to_string().contains("1 bytes after"));
    }
}
