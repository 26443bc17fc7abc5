//! Text to speech with a Piper voice (a VITS model exported to ONNX) through the engine's ONNX
//! Runtime: the espeak-ng program turns the text into IPA phonemes, the phonemes become the
//! ids piper-tts would make, and the model speaks each sentence; the samples are then encoded
//! as WAV (audio.rs) or as an Ogg Opus voice note (ogg_opus.rs).

mod clauses;
mod config;
mod espeak;
mod phonemes;
mod pieces;
mod split_voice;
mod voice;

pub use clauses::{Clause, Ending, clauses};
pub use config::VoiceConfig;
pub use espeak::ESPEAK_NG;
pub use phonemes::{phoneme_ids, phonemize, text_to_ids};
pub use voice::{MAX_SPEED, MIN_SPEED, Speech, Voice};
