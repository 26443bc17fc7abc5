//! Fuzzes the SSE parser with the bytes a provider could send: it never panics, however the
//! network chunks the stream the events are the same, and no event carries a line end where
//! the format cannot have one.
#![no_main]

use carapace_llm::sse::{Parser, parse_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks the chunking; the rest is the stream.
    let Some((&seed, stream)) = input.split_first() else {
        return;
    };
    let whole = parse_all(stream);
    for event in &whole {
        assert!(!event.event.contains(['\r', '\n']), "{event:?}");
        assert!(!event.data.contains('\r'), "{event:?}");
    }
    let mut parser = Parser::new();
    let mut chunked = Vec::new();
    let mut rest = stream;
    let mut state = u32::from(seed) | 0x100;
    while !rest.is_empty() {
        // xorshift: chunk sizes 0..=16, empty chunks included.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state % 17) as usize;
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        chunked.extend(parser.feed(chunk));
        rest = after;
    }
    assert_eq!(chunked, whole);
    // What is held stays proportional to the input: each invalid byte may become a
    // three-byte U+FFFD in the decoded event name or data.
    assert!(parser.pending_len() <= 3 * stream.len());
});
