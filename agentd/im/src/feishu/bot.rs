//! `check`: a tenant token, then `GET /open-apis/bot/v3/info`, which names the app the bot
//! belongs to. Settings transactions call it to prove the app id and secret work.

use super::{CALL_TIMEOUT, CHANNEL, Feishu};
use crate::Error;

impl Feishu {
    pub(super) async fn bot_name(&self) -> Result<String, Error> {
        let url = format!("{}/open-apis/bot/v3/info", self.base);
        let reply = self
            .call("bot info", CALL_TIMEOUT, || self.http.get(&url))
            .await?;
        reply["bot"]["app_name"]
            .as_str()
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol {
                channel: CHANNEL,
                detail: "bot info: the answer names no app (is the app's bot ability on?)".into(),
            })
    }
}
