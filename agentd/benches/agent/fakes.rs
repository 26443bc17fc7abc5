//! One pair of fakes, Telegram and an OpenAI-compatible LLM, on loopback (plain HTTP), on a
//! runtime thread of their own that ends when the pair is dropped. Both agents get the same
//! fakes, a fresh pair for every run.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use carapace_fakes::llm::{Api, FakeLlm};
use carapace_fakes::telegram::{FakeTelegram, Sent};
use tokio::sync::oneshot;

use crate::error::{Context, Result, fail};

/// The owner: a private chat with this user.
pub const OWNER: i64 = 4242;
const OWNER_NAME: &str = "Ann";
/// The most characters of the last message the fake LLM's answers echo ("ok: <its end>"):
/// a chat reply's size that still names the message (the bench knows the reply by it). The
/// whole echo would hand back each agent's own decorations (ZeroClaw appends ~500 bytes of
/// turn context to the owner's text), making its remembered replies, and the summaries
/// agentd asks for, as long as what they summarise.
const ANSWER_LIMIT: usize = 100;

pub struct Fakes {
    pub telegram: FakeTelegram,
    pub llm: FakeLlm,
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Fakes {
    /// A fresh pair on ports the system picks.
    pub fn start() -> Result<Fakes> {
        let any = "127.0.0.1:0".parse().context(|| "loopback".into())?;
        Fakes::start_on(any, any)
    }

    /// A fresh pair on these addresses: a restarted agent finds its fakes where they were.
    pub fn start_on(telegram: SocketAddr, llm: SocketAddr) -> Result<Fakes> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context(|| "the fakes' runtime".into())?;
        let handle = runtime.handle().clone();
        let (telegram, llm) = runtime
            .block_on(async {
                let telegram = FakeTelegram::start(telegram, None).await?;
                let llm = FakeLlm::start(llm, None).await?;
                Ok::<_, carapace_fakes::server::Error>((telegram, llm))
            })
            .context(|| "start the fakes".into())?;
        llm.set_answer_limit(ANSWER_LIMIT);
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ = runtime.block_on(stopped);
        });
        Ok(Fakes {
            telegram,
            llm,
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn telegram_address(&self) -> SocketAddr {
        self.telegram.address()
    }

    pub fn llm_address(&self) -> SocketAddr {
        self.llm.address()
    }

    /// The base URL an OpenAI-compatible client is configured with (…/v1).
    pub fn llm_base_url(&self) -> String {
        self.llm.base_url(Api::OpenAi)
    }

    /// Waits for the agent's first long poll; `None` if it made none in `timeout` or died.
    pub fn wait_first_poll(
        &self,
        process: &mut crate::process::Process,
        timeout: Duration,
    ) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.telegram.first_request_at("getUpdates") {
                return Ok(at);
            }
            if let Some(why) = process.exited() {
                return Err(fail(format!(
                    "{why} before polling Telegram; {}",
                    process.tail()
                )));
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "no getUpdates within {timeout:?}; {}",
                    process.tail()
                )));
            }
            // Short naps: the CPU time is read right after the poll, and polling this
            // often costs the machine next to nothing.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The owner sends `text`; returns the update's id.
    pub fn say(&self, text: &str) -> i64 {
        self.telegram.inject_text(OWNER, OWNER, OWNER_NAME, text)
    }

    /// Waits for a message to the owner holding `marker` among those sent from index `from`
    /// on; returns the index after it and when the fake received it.
    pub fn wait_reply(
        &self,
        from: usize,
        marker: &str,
        timeout: Duration,
    ) -> Result<(usize, Instant)> {
        let deadline = Instant::now() + timeout;
        let mut seen = from;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let sent = self
                .handle
                .block_on(self.telegram.wait_sent(seen + 1, left));
            if let Some(found) = sent
                .iter()
                .skip(from)
                .position(|m| m.chat_id == OWNER.to_string() && m.text.contains(marker))
            {
                return Ok((from + found + 1, sent[from + found].at));
            }
            seen = sent.len();
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "no reply holding {marker:?} within {timeout:?}; the bot sent {:?}",
                    last_texts(&sent)
                )));
            }
        }
    }
}

fn last_texts(sent: &[Sent]) -> Vec<&str> {
    let start = sent.len().saturating_sub(3);
    sent[start..].iter().map(|m| m.text.as_str()).collect()
}

impl Drop for Fakes {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
