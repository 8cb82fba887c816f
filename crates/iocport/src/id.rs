//! Operation ids: which operation a packet reports, and what `cancel` names. Kept apart from the
//! port, the packets and the operations, which all use them.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies one operation started on a port, for [`cancel`](crate::CompletionPort::cancel) and in
/// its completion packet ([`Packet::op`](crate::Packet::op)).
///
/// An id names one operation in the life of the process: besides its slot in the port's op table it
/// carries a 64-bit *generation* drawn from one process-wide sequence, so no two operations, on any
/// ports, ever share an id (2^64 operations at a billion a second take over 500 years). A stale id,
/// or one from another port, finds a slot whose generation differs and is answered "not found".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId {
    generation: NonZeroU64,
    index: u32,
}

impl OpId {
    #[inline]
    pub(crate) fn new(index: u32, generation: NonZeroU64) -> OpId {
        OpId { generation, index }
    }

    /// The slot in the op table.
    pub(crate) fn index(self) -> usize {
        self.index as usize
    }

    /// The operation's generation, unique in the process.
    pub(crate) fn generation(self) -> NonZeroU64 {
        self.generation
    }
}

impl fmt::Debug for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpId({}#{})", self.index, self.generation)
    }
}

/// The process-wide generation sequence. Each op table takes blocks of [`GENERATION_BLOCK`] under
/// its own lock, so drawing a generation is a plain increment almost always.
static NEXT_GENERATION_BLOCK: AtomicU64 = AtomicU64::new(1);
const GENERATION_BLOCK: u64 = 1 << 12;

/// One op table's share of the generation sequence.
#[derive(Default)]
pub(crate) struct Generations {
    next: u64,
    end: u64,
}

impl Generations {
    /// The next generation; never 0, never handed out twice in the process.
    #[inline]
    pub(crate) fn next(&mut self) -> NonZeroU64 {
        if self.next == self.end {
            self.next = NEXT_GENERATION_BLOCK.fetch_add(GENERATION_BLOCK, Ordering::Relaxed);
            self.end = self.next + GENERATION_BLOCK;
        }
        let g = self.next;
        self.next += 1;
        NonZeroU64::new(g).expect("the sequence starts at 1 and cannot wrap in a process's life")
    }
}

/// Moves the generation sequence forward to at least `n` (never back, so no generation is ever
/// handed out twice). Test-only: it lets a test start near the width of an older, narrower id.
pub(crate) fn advance_generations_to(n: u64) {
    NEXT_GENERATION_BLOCK.fetch_max(n.max(1), Ordering::Relaxed);
}
