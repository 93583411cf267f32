//! The crate's one error type: every failure says what happened, to which rank, and
//! what to do about it where something can be done.

use std::fmt;

/// A failure of a multi-process run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The launch variables are missing, malformed or inconsistent.
    Launch(String),
    /// The rendezvous did not complete: who did not arrive, or why a rank could not join.
    Rendezvous(String),
    /// A peer died, hung or aborted after the rendezvous (see [`crate::Failure`]).
    Peer(crate::Failure),
    /// A collective operation failed (NCCL's error, a timeout, a size mismatch).
    Collective(String),
    /// A usage mistake: a batch that does not split, a bucket size of zero, …
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Launch(m) => write!(f, "launch: {m}"),
            Error::Rendezvous(m) => write!(f, "rendezvous: {m}"),
            Error::Peer(failure) => write!(f, "{failure}"),
            Error::Collective(m) => write!(f, "collective: {m}"),
            Error::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Ranks as words: `rank 3`, `ranks 1, 4 and 5`.
pub fn ranks(list: &[usize]) -> String {
    match list {
        [] => "no rank".into(),
        [one] => format!("rank {one}"),
        [init @ .., last] => {
            let init: Vec<String> = init.iter().map(usize::to_string).collect();
            format!("ranks {} and {last}", init.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranks_read_as_words() {
        assert_eq!(super::ranks(&[]), "no rank");
        assert_eq!(super::ranks(&[3]), "rank 3");
        assert_eq!(super::ranks(&[1, 2]), "ranks 1 and 2");
        assert_eq!(super::ranks(&[1, 4, 5]), "ranks 1, 4 and 5");
    }
}
