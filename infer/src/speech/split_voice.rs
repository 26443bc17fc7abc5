//! A Piper voice split at its decoder (carapace_models::piper_split), run on as many threads
//! as the engine owns. Every session here runs on the thread that calls it, and the threads
//! share the work between them: one runs the front (text encoder, durations, flow) of the next
//! sentence while the others decode the sentences before it, and the last sentence's decoding
//! is cut into a piece per thread (pieces.rs), so that no thread waits at the end; no piece is
//! longer than MAX_PIECE_FRAMES, for the decoder's working memory.
//!
//! Why not ONNX Runtime's own pool: the model is a long chain of small operators, each of
//! which the pool splits between its threads and waits on, and with its threads not spinning
//! (a small box's cores belong to the link and the agent too) the waking costs: two threads ran
//! Piper's joe voice 1.73 times faster than one, where two sentences side by side on a thread
//! each run 2 times faster. The front holds 56 MB of weights and runs once per sentence, so it
//! has one session; the decoder holds 7 MB and has one session per thread.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use carapace_models::piper_split::{
    AUDIO, CONTEXT_FRAMES_KEY, DECODER, FRONT, LATENT, SAMPLES_PER_FRAME_KEY,
};
use ort::session::Session;
use ort::value::Tensor;

use super::pieces::{Piece, cut};
use crate::error::{Error, Result};
use crate::onnx::{OnnxRuntime, SessionOptions};

/// The longest piece decoded in one run, in latent frames (1.1 s of Piper's medium voices at
/// 22 050 Hz): the decoder's working memory grows with the piece (its last layers hold 64
/// channels at the sample rate, 10 MB a tensor for 150 frames), so a long sentence is cut into
/// pieces of at most this many frames even where no thread waits for one. Measured on the
/// bench's three sentences, 2 threads: 256 frames, 204 MiB at the peak and 230 ms; 96, 170 MiB
/// and the same time (the pieces share the threads' work out more evenly); 64, 167 MiB, 246 ms.
const MAX_PIECE_FRAMES: usize = 96;

pub(super) struct SplitVoice {
    front: Session,
    /// One per thread of the engine's pool.
    decoders: Vec<Session>,
    context_frames: usize,
    samples_per_frame: usize,
}

fn failed(e: ort::Error) -> Error {
    Error::Inference {
        model: "piper",
        reason: e.to_string(),
    }
}

impl SplitVoice {
    /// The split voice in `dir`, or None where `dir` holds a voice as piper exports it (one
    /// `.onnx`; a model pack's voice, say).
    pub fn load(
        runtime: &OnnxRuntime,
        dir: &Path,
        options: SessionOptions,
    ) -> Result<Option<SplitVoice>> {
        let (front, decoder) = (dir.join(FRONT), dir.join(DECODER));
        if !front.is_file() || !decoder.is_file() {
            return Ok(None);
        }
        let options = SessionOptions {
            on_the_callers_thread: true,
            ..options
        };
        let front_session = runtime.session_with(&front, options)?;
        super::voice::check_inputs(&front_session, &front)?;
        let decoders = (0..runtime.threads().get())
            .map(|_| runtime.session_with(&decoder, options))
            .collect::<Result<Vec<_>>>()?;
        let number = |key: &str| -> Result<usize> {
            let metadata = decoders[0].metadata().map_err(failed)?;
            metadata
                .custom(key)
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| Error::OnnxModel {
                    path: decoder.clone(),
                    reason: format!(
                        "its metadata has no number {key}; the split that wrote it is older \
                         than this engine, so fetch the voice again"
                    ),
                })
        };
        let (context_frames, samples_per_frame) =
            (number(CONTEXT_FRAMES_KEY)?, number(SAMPLES_PER_FRAME_KEY)?);
        if samples_per_frame == 0 {
            return Err(Error::OnnxModel {
                path: decoder,
                reason: format!("{SAMPLES_PER_FRAME_KEY} is 0"),
            });
        }
        Ok(Some(SplitVoice {
            front: front_session,
            decoders,
            context_frames,
            samples_per_frame,
        }))
    }

    /// Each sentence's samples as the model makes them (not normalized), in order: the
    /// sentences' phoneme `ids` read with the model's three `scales`.
    pub fn speak(&mut self, sentences: &[Vec<i64>], scales: [f32; 3]) -> Result<Vec<Vec<f32>>> {
        let shared = Shared {
            board: Mutex::new(Board {
                next_sentence: 0,
                front_busy: false,
                ready: VecDeque::new(),
                samples: vec![Vec::new(); sentences.len()],
                failed: None,
            }),
            wake: Condvar::new(),
            front: Mutex::new(&mut self.front),
            sentences,
            scales,
            threads: self.decoders.len(),
            context_frames: self.context_frames,
            samples_per_frame: self.samples_per_frame,
        };
        let Some((first, others)) = self.decoders.split_first_mut() else {
            return Err(Error::Inference {
                model: "piper",
                reason: "the voice has no decoder session".into(),
            });
        };
        std::thread::scope(|scope| {
            for decoder in others {
                let shared = &shared;
                scope.spawn(move || shared.work(decoder));
            }
            shared.work(first);
        });
        let board = shared
            .board
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(error) = board.failed {
            return Err(error);
        }
        Ok(board
            .samples
            .into_iter()
            .map(|pieces| pieces.into_iter().flatten().flatten().collect())
            .collect())
    }
}

/// What the threads of one `speak` share.
struct Shared<'a> {
    board: Mutex<Board>,
    /// Rung when a front is done (new pieces, or the last sentence taken) or a run failed.
    wake: Condvar,
    front: Mutex<&'a mut Session>,
    sentences: &'a [Vec<i64>],
    scales: [f32; 3],
    threads: usize,
    context_frames: usize,
    samples_per_frame: usize,
}

/// The work of one `speak`, as far as it has got.
struct Board {
    /// The first sentence no thread has taken to the front.
    next_sentence: usize,
    front_busy: bool,
    /// Pieces whose latent frames are ready, first sentence first.
    ready: VecDeque<Job>,
    /// Each sentence's samples, piece by piece.
    samples: Vec<Vec<Option<Vec<f32>>>>,
    failed: Option<Error>,
}

/// A piece of a sentence to decode.
struct Job {
    sentence: usize,
    index: usize,
    piece: Piece,
    latent: Arc<Latent>,
}

/// The front's output for a sentence: `channels` rows of `frames` values.
struct Latent {
    channels: usize,
    frames: usize,
    values: Vec<f32>,
}

impl Shared<'_> {
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One thread's loop: the next sentence's front when no thread runs it, else a ready
    /// piece, else wait for one; until no sentence or piece is left, or a run failed.
    fn work(&self, decoder: &mut Session) {
        let mut board = self.lock();
        loop {
            if board.failed.is_some() {
                break;
            }
            if !board.front_busy && board.next_sentence < self.sentences.len() {
                let sentence = board.next_sentence;
                board.next_sentence += 1;
                board.front_busy = true;
                drop(board);
                let latent = self.front(sentence);
                board = self.lock();
                board.front_busy = false;
                match latent {
                    Ok(latent) => self.plan(&mut board, sentence, latent),
                    Err(error) => board.failed = Some(error),
                }
                self.wake.notify_all();
            } else if let Some(job) = board.ready.pop_front() {
                drop(board);
                let samples = decode(decoder, &job, self.samples_per_frame);
                board = self.lock();
                match samples {
                    Ok(samples) => board.samples[job.sentence][job.index] = Some(samples),
                    Err(error) => {
                        board.failed = Some(error);
                        self.wake.notify_all();
                    }
                }
            } else if board.next_sentence == self.sentences.len() && !board.front_busy {
                break;
            } else {
                board = self
                    .wake
                    .wait(board)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
    }

    /// The latent frames of sentence `index`.
    fn front(&self, index: usize) -> Result<Latent> {
        let ids = &self.sentences[index];
        let mut front = self.front.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = front
            .run(ort::inputs![
                "input" => Tensor::from_array(([1usize, ids.len()], ids.to_vec())).map_err(failed)?,
                "input_lengths" => Tensor::from_array(([1usize], vec![ids.len() as i64])).map_err(failed)?,
                "scales" => Tensor::from_array(([3usize], self.scales.to_vec())).map_err(failed)?,
            ])
            .map_err(failed)?;
        let (shape, values) = outputs[LATENT]
            .try_extract_tensor::<f32>()
            .map_err(failed)?;
        match shape[..] {
            [1, channels, frames] if channels > 0 && frames >= 0 => Ok(Latent {
                channels: channels as usize,
                frames: frames as usize,
                values: values.to_vec(),
            }),
            _ => Err(Error::Inference {
                model: "piper",
                reason: format!("the front gave latent frames of shape {shape:?}"),
            }),
        }
    }

    /// Queues sentence `sentence`'s pieces: one, or one per thread for the last sentence (no
    /// other work is left to keep the threads busy), and none longer than MAX_PIECE_FRAMES.
    fn plan(&self, board: &mut Board, sentence: usize, latent: Latent) {
        if latent.frames == 0 {
            return;
        }
        let last = sentence + 1 == self.sentences.len();
        let for_threads = if last { self.threads } else { 1 };
        let wanted = for_threads.max(latent.frames.div_ceil(MAX_PIECE_FRAMES));
        let pieces = cut(latent.frames, wanted, self.context_frames);
        board.samples[sentence] = vec![None; pieces.len()];
        let latent = Arc::new(latent);
        board
            .ready
            .extend(pieces.into_iter().enumerate().map(|(index, piece)| Job {
                sentence,
                index,
                piece,
                latent: Arc::clone(&latent),
            }));
    }
}

/// The samples of `job`'s own frames, decoded from the frames it reads.
fn decode(decoder: &mut Session, job: &Job, samples_per_frame: usize) -> Result<Vec<f32>> {
    let Latent {
        channels,
        frames,
        values,
    } = &*job.latent;
    let (read, own) = (&job.piece.read, &job.piece.own);
    let mut input = Vec::with_capacity(channels * read.len());
    for row in values.chunks_exact(*frames).take(*channels) {
        input.extend_from_slice(&row[read.clone()]);
    }
    let outputs = decoder
        .run(ort::inputs![
            LATENT => Tensor::from_array(([1usize, *channels, read.len()], input)).map_err(failed)?,
        ])
        .map_err(failed)?;
    let (_, audio) = outputs[AUDIO].try_extract_tensor::<f32>().map_err(failed)?;
    let skip = (own.start - read.start) * samples_per_frame;
    let keep = own.len() * samples_per_frame;
    audio
        .get(skip..skip + keep)
        .map(<[f32]>::to_vec)
        .ok_or_else(|| Error::Inference {
            model: "piper",
            reason: format!(
                "the decoder gave {} samples for {} frames; {} were expected",
                audio.len(),
                read.len(),
                read.len() * samples_per_frame
            ),
        })
}
