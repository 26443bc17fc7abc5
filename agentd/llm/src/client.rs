//! The LLM client agentd holds: the owner's providers, checked once, tried in order. A
//! provider that is down, slow, over its rate limit or refusing its key hands the request to
//! the next one, so one bad setting cannot silence the agent while another provider works.

use reqwest::header::HeaderValue;
use reqwest::{Client, Url};

use crate::error::{Error, ProviderId};
use crate::transport::{Target, Timeouts, exchange};
use crate::types::{ApiKind, Message, ProviderSettings, Reply, Request};
use crate::{anthropic, openai};

#[derive(Debug)]
pub struct Llm {
    http: Client,
    providers: Vec<Provider>,
    timeouts: Timeouts,
}

#[derive(Debug)]
struct Provider {
    id: ProviderId,
    settings: ProviderSettings,
    endpoint: Url,
    auth: HeaderValue,
}

impl Llm {
    /// Checks every provider's settings (an https base URL, or http to this box; a model; a
    /// key a header can carry) and keeps them in the order given. `http` should be
    /// `carapace_http`'s client: it follows no redirects, which would carry the key along.
    pub fn new(http: Client, providers: Vec<ProviderSettings>) -> Result<Llm, Error> {
        if providers.is_empty() {
            return Err(Error::NoProvider);
        }
        let providers = providers
            .into_iter()
            .enumerate()
            .map(|(index, settings)| Provider::new(index, settings))
            .collect::<Result<_, _>>()?;
        Ok(Llm {
            http,
            providers,
            timeouts: Timeouts::default(),
        })
    }

    /// Replaces the default limits (120 s for a whole reply, 30 s of silence mid-reply).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Llm {
        self.timeouts = timeouts;
        self
    }

    /// How many providers there are (indexes for [`Llm::check`]).
    pub fn provider_count(&self) -> usize {
        self.providers.len()
    }

    /// The model's reply to `request` from the first provider that gives one. When none
    /// does, the error is that provider's own when only one was tried, else a list of each
    /// provider's failure in order.
    pub async fn complete(&self, request: &Request) -> Result<Reply, Error> {
        let mut failures = Vec::new();
        for provider in &self.providers {
            match self
                .ask(provider, request, provider.settings.max_tokens)
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(error) => {
                    let next = error.fails_over();
                    failures.push(error);
                    if !next {
                        break;
                    }
                }
            }
        }
        match failures.pop() {
            Some(only) if failures.is_empty() => Err(only),
            Some(last) => {
                failures.push(last);
                Err(Error::NoProviderAnswered(failures))
            }
            None => Err(Error::NoProvider),
        }
    }

    /// Asks provider `index` for a one-token reply to "ping": proves that its address, key
    /// and model work. Settings transactions call it before they keep a change.
    pub async fn check(&self, index: usize) -> Result<(), Error> {
        let provider = self.providers.get(index).ok_or(Error::NoSuchProvider {
            index,
            count: self.providers.len(),
        })?;
        let ping = Request {
            system: String::new(),
            messages: vec![Message::user("ping")],
            tools: Vec::new(),
        };
        self.ask(provider, &ping, 1).await.map(|_| ())
    }

    async fn ask(
        &self,
        provider: &Provider,
        request: &Request,
        max_tokens: u32,
    ) -> Result<Reply, Error> {
        let model = &provider.settings.model;
        let body = match provider.settings.api {
            ApiKind::OpenAi => openai::body(model, max_tokens, request),
            ApiKind::Anthropic => anthropic::body(model, max_tokens, request),
        };
        let body = body.to_string().into_bytes();
        let bytes_sent = body.len();
        let target = Target {
            id: &provider.id,
            api: provider.settings.api,
            endpoint: &provider.endpoint,
            key: &provider.settings.api_key,
            auth: &provider.auth,
        };
        let answer = exchange(&self.http, &target, body, self.timeouts).await?;
        Ok(Reply {
            text: answer.text,
            tool_calls: answer.tool_calls,
            usage: answer.usage,
            provider: provider.id.index,
            bytes_sent,
        })
    }
}

impl Provider {
    fn new(index: usize, mut settings: ProviderSettings) -> Result<Provider, Error> {
        let base = carapace_http::checked_url(settings.base_url.trim())
            .map_err(|source| Error::BadUrl { index, source })?;
        let host = match (base.host_str(), base.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        let id = ProviderId { index, host };
        let path = match settings.api {
            ApiKind::OpenAi => openai::PATH,
            ApiKind::Anthropic => anthropic::PATH,
        };
        let mut endpoint = base.clone();
        endpoint
            .path_segments_mut()
            .map_err(|()| Error::BadUrl {
                index,
                source: carapace_http::Error::BadUrl {
                    url: base.to_string(),
                    reason: "it cannot have a path".into(),
                },
            })?
            .pop_if_empty()
            .extend(path.split('/'));
        // Pasted settings bring stray spaces and line breaks; neither belongs in a name or key.
        settings.model = settings.model.trim().to_owned();
        settings.api_key = settings.api_key.trim().to_owned();
        if settings.model.is_empty() {
            return Err(Error::NoModel { provider: id });
        }
        if settings.api_key.is_empty() {
            return Err(Error::NoKey { provider: id });
        }
        let auth = match settings.api {
            ApiKind::OpenAi => format!("Bearer {}", settings.api_key),
            ApiKind::Anthropic => settings.api_key.clone(),
        };
        let Ok(mut auth) = HeaderValue::from_str(&auth) else {
            return Err(Error::BadKey { provider: id });
        };
        auth.set_sensitive(true);
        Ok(Provider {
            id,
            settings,
            endpoint,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api: ApiKind, base_url: &str) -> ProviderSettings {
        ProviderSettings {
            api,
            base_url: base_url.into(),
            model: "m".into(),
            api_key: "sk-1".into(),
            max_tokens: 10,
        }
    }

    fn client() -> Client {
        carapace_http::client_trusting(None, std::path::Path::new("-")).unwrap()
    }

    #[test]
    fn endpoints_follow_each_api() {
        let llm = Llm::new(
            client(),
            vec![
                settings(ApiKind::OpenAi, "https://api.openai.com/v1"),
                settings(ApiKind::OpenAi, "http://127.0.0.1:8080/v1/"),
                settings(ApiKind::Anthropic, " https://api.anthropic.com "),
            ],
        )
        .unwrap();
        let endpoints: Vec<&str> = llm.providers.iter().map(|p| p.endpoint.as_str()).collect();
        assert_eq!(
            endpoints,
            [
                "https://api.openai.com/v1/chat/completions",
                "http://127.0.0.1:8080/v1/chat/completions",
                "https://api.anthropic.com/v1/messages",
            ]
        );
        assert_eq!(llm.providers[1].id.host, "127.0.0.1:8080");
        assert_eq!(llm.provider_count(), 3);
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(matches!(Llm::new(client(), vec![]), Err(Error::NoProvider)));
        let plain = settings(ApiKind::OpenAi, "http://api.openai.com/v1");
        let error = Llm::new(client(), vec![plain]).unwrap_err();
        assert!(matches!(error, Error::BadUrl { index: 0, .. }), "{error}");
        let mut no_model = settings(ApiKind::OpenAi, "https://a.example/v1");
        no_model.model = " ".into();
        let good = settings(ApiKind::OpenAi, "https://a.example/v1");
        let error = Llm::new(client(), vec![good, no_model]).unwrap_err();
        assert!(matches!(&error, Error::NoModel { provider } if provider.index == 1));
        let mut no_key = settings(ApiKind::Anthropic, "https://a.example");
        no_key.api_key = "\n".into();
        assert!(matches!(
            Llm::new(client(), vec![no_key]),
            Err(Error::NoKey { .. })
        ));
        let mut odd_key = settings(ApiKind::Anthropic, "https://a.example");
        odd_key.api_key = "sk-1\nsk-2".into();
        let error = Llm::new(client(), vec![odd_key]).unwrap_err();
        assert!(matches!(error, Error::BadKey { .. }));
        assert!(!error.to_string().contains("sk-1"), "{error}");
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let llm = Llm::new(
            client(),
            vec![settings(ApiKind::OpenAi, "https://a.example")],
        )
        .unwrap();
        let debug = format!("{llm:?}");
        assert!(!debug.contains("sk-1"), "{debug}");
    }

    #[tokio::test]
    async fn check_names_a_missing_provider() {
        let llm = Llm::new(
            client(),
            vec![settings(ApiKind::OpenAi, "https://a.example")],
        )
        .unwrap();
        let error = llm.check(3).await.unwrap_err();
        assert!(matches!(
            error,
            Error::NoSuchProvider { index: 3, count: 1 }
        ));
    }
}
