//! `TokenSlot`: a token's place in a `VerifierView`.

/// Where a token sits in a `VerifierView`: dense from 0 in issue order and
/// stable for the view's life (a view never removes a token; a revoked one
/// stays, marked). A verifier keeps per-token counters in a plain array
/// indexed by it instead of a map keyed by token id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSlot(u32);

impl TokenSlot {
    pub(crate) fn new(index: u32) -> Self {
        Self(index)
    }

    /// The slot at `index` (a view answers `None` for one it does not have).
    pub fn from_index(index: usize) -> Self {
        Self(u32::try_from(index).unwrap_or(u32::MAX))
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}
