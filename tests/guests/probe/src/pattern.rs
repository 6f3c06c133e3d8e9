//! The bytes the probe's stream requests write and check, shared with the
//! host's benchmark (`host/benches/storage.rs` includes this file), so both
//! sides make the same bytes.

/// The bytes a stream request writes and checks: the little-endian words of
/// a xorshift sequence from `seed`, eight bytes a step so that making them
/// costs little next to storing them; the same in the guest and in the
/// benchmark.
pub struct Pattern {
    state: u64,
    /// The current word, and how many of its bytes are used.
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The pattern of `seed`, from its start.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed | 1,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state.to_le_bytes()
    }

    /// Whether `data` is the pattern's next bytes (it moves on past them
    /// either way); a word at a time, with no buffer to fill.
    pub fn check(&mut self, mut data: &[u8]) -> bool {
        let mut same = true;
        let left = (8 - self.used).min(data.len());
        same &= data[..left] == self.word[self.used..self.used + left];
        self.used += left;
        data = &data[left..];
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut got = [0u8; 8];
            got.copy_from_slice(w);
            same &= got == self.next_word();
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            self.used = tail.len();
            same &= tail == &self.word[..tail.len()];
        }
        same
    }

    /// Writes the pattern's next bytes into `out`.
    pub fn fill(&mut self, mut out: &mut [u8]) {
        let left = (8 - self.used).min(out.len());
        out[..left].copy_from_slice(&self.word[self.used..self.used + left]);
        self.used += left;
        out = &mut out[left..];
        let mut words = out.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_word());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            self.used = tail.len();
            tail.copy_from_slice(&self.word[..tail.len()]);
        }
    }
}
