//! The collective operations a data-parallel step needs, as a trait.
//!
//! Placeholder: the trait is written with its implementations.

/// Bytes of one buffer a collective operates on, f32 elements (offset and size
/// multiples of 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub buffer: usize,
    pub offset: usize,
    pub bytes: usize,
}
