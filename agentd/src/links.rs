//! The agent's links to the world, built from the owner's settings: the IM channels and the
//! LLM client. A settings change builds a new set, checks it, and only then replaces the old.

use std::sync::Arc;
use std::time::Duration;

use carapace_http::Client;
use carapace_im::feishu::Feishu;
use carapace_im::telegram::Telegram;
use carapace_im::{Channel, ChannelKind, Outgoing};
use carapace_llm::{Llm, Reply, Request};
use carapace_owner::OwnerSettings;

use crate::turn::Brain;

/// How long Telegram holds a getUpdates call open.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(50);

pub struct Links {
    pub telegram: Option<Arc<Telegram>>,
    pub feishu: Option<Arc<Feishu>>,
    pub llm: Arc<Llm>,
}

impl crate::agent::Media for Links {
    async fn download(
        &self,
        channel: ChannelKind,
        file: &carapace_im::FileRef,
    ) -> Result<Vec<u8>, String> {
        let fetched = match channel {
            ChannelKind::Telegram => match &self.telegram {
                Some(telegram) => telegram.download(file).await,
                None => return Err("Telegram is not set up on this box".into()),
            },
            ChannelKind::Feishu => match &self.feishu {
                Some(feishu) => feishu.download(file).await,
                None => return Err("Feishu is not set up on this box".into()),
            },
        };
        fetched.map_err(|error| error.to_string())
    }
}

/// Why a check failed, and whether trying again later may work (a link still coming up, a
/// server down for now), as opposed to settings that are wrong (a refused key).
#[derive(Debug)]
pub struct CheckFailure {
    pub reason: String,
    pub transient: bool,
}

impl Links {
    pub fn build(settings: &OwnerSettings, http: &Client) -> Result<Links, String> {
        let telegram = match &settings.telegram {
            Some(t) => Some(Arc::new(
                Telegram::new(http.clone(), &t.api_base, t.token.clone(), POLL_TIMEOUT)
                    .map_err(|error| format!("telegram: {error}"))?,
            )),
            None => None,
        };
        let feishu = match &settings.feishu {
            Some(f) => {
                // The WebSocket trusts what the HTTPS client trusts.
                let tls =
                    carapace_http::tls_config().map_err(|error| format!("feishu: {error}"))?;
                Some(Arc::new(
                    Feishu::new(
                        http.clone(),
                        tls,
                        &f.domain,
                        f.app_id.clone(),
                        f.app_secret.clone(),
                    )
                    .map_err(|error| format!("feishu: {error}"))?,
                ))
            }
            None => None,
        };
        let providers = settings.llm.clone();
        let llm = Llm::new(http.clone(), providers).map_err(|error| format!("llm: {error}"))?;
        Ok(Links {
            telegram,
            feishu,
            llm: Arc::new(llm),
        })
    }

    /// Whether the agent reaches its model (any provider) and every IM link.
    pub async fn check(&self) -> Result<(), CheckFailure> {
        let mut llm_errors = Vec::new();
        let mut transient = false;
        let mut reached = false;
        for index in 0..self.llm.provider_count() {
            match self.llm.check(index).await {
                Ok(()) => {
                    reached = true;
                    break;
                }
                Err(error) => {
                    transient |= matches!(
                        error,
                        carapace_llm::Error::Unreachable { .. }
                            | carapace_llm::Error::RateLimited { .. }
                    );
                    llm_errors.push(error.to_string());
                }
            }
        }
        if !reached {
            return Err(CheckFailure {
                reason: format!("no LLM provider answered: {}", llm_errors.join("; ")),
                transient,
            });
        }
        let im = |name: &str, error: carapace_im::Error| CheckFailure {
            reason: format!("{name}: {error}"),
            transient: error.is_transient(),
        };
        if let Some(telegram) = &self.telegram {
            telegram.check().await.map_err(|e| im("telegram", e))?;
        }
        if let Some(feishu) = &self.feishu {
            feishu.check().await.map_err(|e| im("feishu", e))?;
        }
        Ok(())
    }

    pub async fn send(
        &self,
        channel: ChannelKind,
        chat: &str,
        message: &Outgoing,
    ) -> Result<(), carapace_im::Error> {
        match channel {
            ChannelKind::Telegram => match &self.telegram {
                Some(telegram) => telegram.send(chat, message).await,
                None => Err(not_configured(channel)),
            },
            ChannelKind::Feishu => match &self.feishu {
                Some(feishu) => feishu.send(chat, message).await,
                None => Err(not_configured(channel)),
            },
        }
    }
}

fn not_configured(channel: ChannelKind) -> carapace_im::Error {
    carapace_im::Error::Rejected {
        channel: channel.name(),
        detail: "this channel is not in the settings any more".into(),
    }
}

/// The model, as the turn loop sees it.
pub struct LlmBrain(pub Arc<Llm>);

impl Brain for LlmBrain {
    async fn complete(&self, request: &Request) -> Result<Reply, String> {
        self.0
            .complete(request)
            .await
            .map_err(|error| error.to_string())
    }
}
