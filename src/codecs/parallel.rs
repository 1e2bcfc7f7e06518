//! Parsing chunks of one file on several threads while the decoder's thread only reads: for
//! the formats whose parsing costs several times more than reading (NDJSON, XML). Chunks are
//! handed to the parsing threads round-robin and their results taken back in the same order,
//! so records keep their file order. Small files never pay for threads: the first chunks are
//! parsed on the decoder's own thread.

use std::collections::VecDeque;
use std::io;
use std::sync::mpsc;

/// Turns one chunk of a file into its records. Each parsing thread gets a clone, taken when the
/// threads start, so state such as interned field names is shared from then on.
pub(crate) trait ChunkParser: Clone + Send + 'static {
    type Chunk: Send + 'static;
    type Parsed: Send + 'static;
    fn parse(&mut self, chunk: Self::Chunk) -> Self::Parsed;
}

/// Chunks handed in and not yet taken out, oldest first.
pub(crate) struct ParallelChunks<P: ChunkParser> {
    /// Parses chunks here until the threads start.
    parser: P,
    thread_name: &'static str,
    pending: VecDeque<Slot<P::Parsed>>,
    helpers: Vec<Helper<P>>,
    next_helper: usize,
    chunks_pushed: u64,
}

/// A chunk parsed here, or one a helper is parsing.
enum Slot<T> {
    Here(T),
    ByHelper(usize),
}

struct Helper<P: ChunkParser> {
    chunks: mpsc::SyncSender<P::Chunk>,
    results: mpsc::Receiver<P::Parsed>,
}

/// Chunks parsed before parsing threads start: small files never pay for threads.
const CHUNKS_BEFORE_HELPERS: u64 = 8;
/// Chunks each parsing thread may have queued or in progress.
const CHUNKS_PER_HELPER: usize = 2;
/// Parsing threads at most (one per core up to this).
const MAX_HELPERS: usize = 4;

impl<P: ChunkParser> ParallelChunks<P> {
    pub(crate) fn new(parser: P, thread_name: &'static str) -> Self {
        ParallelChunks {
            parser,
            thread_name,
            pending: VecDeque::new(),
            helpers: Vec::new(),
            next_helper: 0,
            chunks_pushed: 0,
        }
    }

    /// Whether another chunk may be pushed before the oldest is popped: with threads, enough
    /// to keep each busy; without, one.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() < (self.helpers.len() * CHUNKS_PER_HELPER).max(1)
    }

    /// Hands a chunk to the next parsing thread, or parses it here.
    pub(crate) fn push(&mut self, chunk: P::Chunk) {
        if self.helpers.is_empty() && self.chunks_pushed == CHUNKS_BEFORE_HELPERS {
            self.start_helpers();
        }
        self.chunks_pushed += 1;
        if self.helpers.is_empty() {
            let parsed = self.parser.parse(chunk);
            self.pending.push_back(Slot::Here(parsed));
            return;
        }
        let index = self.next_helper;
        self.next_helper = (index + 1) % self.helpers.len();
        match self.helpers[index].chunks.send(chunk) {
            Ok(()) => self.pending.push_back(Slot::ByHelper(index)),
            // The thread is gone (it can only have panicked): parse here instead.
            Err(mpsc::SendError(chunk)) => {
                let parsed = self.parser.parse(chunk);
                self.pending.push_back(Slot::Here(parsed));
            }
        }
    }

    /// The oldest chunk's result, waiting for its thread if need be; `None` when no chunk is
    /// pending.
    pub(crate) fn pop(&mut self) -> Option<io::Result<P::Parsed>> {
        Some(match self.pending.pop_front()? {
            Slot::Here(parsed) => Ok(parsed),
            Slot::ByHelper(index) => self.helpers[index]
                .results
                .recv()
                .map_err(|_| io::Error::other("the parsing thread stopped")),
        })
    }

    /// Whether parsing threads took over.
    #[cfg(test)]
    pub(crate) fn uses_threads(&self) -> bool {
        !self.helpers.is_empty()
    }

    fn start_helpers(&mut self) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cores < 2 {
            return;
        }
        for _ in 0..cores.min(MAX_HELPERS) {
            let (chunks, chunk_receiver) = mpsc::sync_channel::<P::Chunk>(CHUNKS_PER_HELPER);
            let (result_sender, results) = mpsc::sync_channel(CHUNKS_PER_HELPER);
            let mut parser = self.parser.clone();
            let spawned = std::thread::Builder::new()
                .name(self.thread_name.into())
                .spawn(move || {
                    for chunk in chunk_receiver {
                        if result_sender.send(parser.parse(chunk)).is_err() {
                            return;
                        }
                    }
                });
            // With fewer threads than asked for (none to be had), parsing is slower, not wrong.
            if spawned.is_ok() {
                self.helpers.push(Helper { chunks, results });
            }
        }
    }
}
