//! The agent's answer to one stored message: who sent it (pairing), a command that needs no
//! model, or a turn with the model. It returns what to store in the same transaction that
//! marks the message answered, and what the runtime must do after (a settings trial, a
//! reboot).

use board_support::local_inference::VOICE_LANGUAGE;
use carapace_audit::AuditLog;
use carapace_im::{ChannelKind, Content, FileRef, Incoming, Outgoing};
use carapace_llm::Image;
use carapace_owner::OwnerSettings;

use crate::approvals::{self, Asked, Choice};
use crate::commands;
use crate::error::Error;
use crate::local_inference::Heard;
use crate::pairing::{Guard, Outcome};
use crate::store::{Answer, OutboxEntry, Role, Store, User};
use crate::tools::{Registry, ToolContext};
use crate::turn::{Brain, TurnLimits, UserTurn, capped_summary, run_turn, summary_request, trim};

/// The longest answer spoken back as a voice note (about a minute of speech); a longer one
/// goes as text only.
const SPOKEN_REPLY_MAX_CHARS: usize = 1000;

/// One reply and nothing else: no history, no effect.
fn answered(reply: OutboxEntry) -> Handled {
    Handled {
        answer: Answer {
            replies: vec![reply],
            history: None,
        },
        effect: Effect::None,
    }
}

/// What the runtime does once the answer is stored.
#[derive(Debug, PartialEq)]
pub enum Effect {
    None,
    /// Try these settings and keep them only if the LLM and the IM link still work.
    TrySettings {
        settings: Box<OwnerSettings>,
        changed: String,
    },
    /// The owner confirmed a reboot.
    Reboot,
    /// Fetch the model pack at this link in the background (`/add_model`; runtime/model_adds.rs).
    AddModel {
        url: carapace_http::Url,
    },
    /// The command's own message is taken out of the chat (it carried a secret); agent.rs
    /// turns this into a reply, so the runtime never sees it.
    DeleteCommandMessage,
}

/// Files people sent, fetched from their IM server (links.rs: Telegram's getFile, Feishu's
/// message resources).
pub trait Media {
    fn download(
        &self,
        channel: ChannelKind,
        file: &FileRef,
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// A photo as the box read it: its text, what an image description model saw in it (where
/// a model pack brings one), and the image when the model may see it.
struct ReadPhoto {
    text: String,
    description: Option<String>,
    shown: Option<Image>,
}

#[derive(Debug)]
pub struct Handled {
    pub answer: Answer,
    pub effect: Effect,
}

pub struct Agent {
    pub store: std::sync::Arc<Store>,
    pub audit: AuditLog,
    pub tools: Registry,
    pub guard: Guard,
    /// `ed25519:<hex>`.
    pub identity: String,
    pub hostname: String,
    pub settings: OwnerSettings,
    pub limits: TurnLimits,
    /// The update service, for /update.
    pub updates: crate::updates::UpdateControl,
    /// The local inference engine: memories (/remember, /recall, their tools) and voice notes.
    pub inference: crate::local_inference::LocalInference,
    /// The skills, the image's and the owner's: listed in the prompt, read through
    /// `read_skill`.
    pub skills: crate::skills::Skills,
    /// What `/mcp add` needs: the HTTPS client, and netd to let a new server's host out.
    pub mcp: Option<crate::mcp_servers::Access>,
    /// Where the disk helper handed over an encrypted /data's recovery key (`/recovery_key`).
    pub recovery_key_file: std::path::PathBuf,
}

/// The prompt's room for the skills' names and descriptions (the whole request stays under
/// 8 KB with the tools' schemas).
const SKILLS_PROMPT_BYTES: usize = 1536;

impl Agent {
    /// Appends to the audit log; a failure to do so is reported on the console, never
    /// swallowed, but does not stop the agent answering.
    pub fn record(&mut self, kind: &str, detail: &str, now: u64) {
        if let Err(error) = self.audit.append(kind, detail, now) {
            eprintln!("audit: {error}");
        }
    }

    pub async fn handle<B: Brain, M: Media>(
        &mut self,
        brain: &B,
        media: &M,
        message: &Incoming,
        now: u64,
    ) -> Result<Handled, Error> {
        let reply = |text: String| OutboxEntry {
            channel: message.channel,
            chat: message.chat.clone(),
            message: Outgoing::Text(text),
        };
        let user = self.store.user(message.channel, &message.sender)?;
        let Some(user) = user else {
            return self.stranger(message, now);
        };
        let mut images = Vec::new();
        // A voice note's language, once heard: the answer is spoken too where the voice can.
        let mut spoken_in = None;
        let text = match &message.content {
            Content::Text(text) => text.clone(),
            Content::Button { data } => {
                return self.answer_button(brain, &user, message, data, now).await;
            }
            Content::Unsupported(kind) => {
                return Ok(answered(reply(format!("I cannot read a {kind} yet."))));
            }
            // Heard on the box: the model gets the words, never the audio.
            Content::Voice { file, seconds } => {
                match self.hear(media, message, file, *seconds, now).await {
                    Ok(heard) => {
                        let note = match heard.language.as_str() {
                            VOICE_LANGUAGE => "a voice note".to_string(),
                            other => format!("a voice note in {other}"),
                        };
                        let words = heard.text.trim();
                        spoken_in = Some(heard.language.clone());
                        format!("[{note}, transcribed on the box] {words}")
                    }
                    Err(why) => return Ok(answered(reply(why))),
                }
            }
            // Read on the box: the model gets the text in the photo; the image itself only
            // where the owner shares this chat's photos (/share_photos).
            Content::Photo { file, caption } => {
                // Captioned /read: the text itself, straight back, without the model.
                let read_only = commands::parse(caption).is_some_and(|c| c.name == "read");
                let shared = match read_only {
                    true => None,
                    false => commands::photos_shared(&self.store, message.channel, &message.chat)?,
                };
                let photo = match self
                    .read_photo(media, message, file, !read_only, shared, now)
                    .await
                {
                    Ok(photo) => photo,
                    Err(why) => return Ok(answered(reply(why))),
                };
                if read_only {
                    return Ok(answered(reply(if photo.text.is_empty() {
                        "I found no text in that photo.".to_string()
                    } else {
                        photo.text
                    })));
                }
                let what = match photo.shown {
                    Some(image) => {
                        images.push(image);
                        "a photo, attached"
                    }
                    None => "a photo",
                };
                let mut seen = Vec::new();
                if let Some(description) = &photo.description {
                    seen.push(format!("what the box sees in it: {description}"));
                }
                seen.push(if photo.text.is_empty() {
                    "the box found no text in it".to_string()
                } else {
                    format!("the text in it, read on the box:\n{}\n", photo.text)
                });
                let note = format!("[{what}; {}]", seen.join("; "));
                format!("{note} {caption}").trim_end().to_string()
            }
            // The owner's zip is a skill to install (skill_install.rs).
            Content::Document { file, name, .. }
                if user.role == Role::Owner && crate::skill_install::is_zip(name) =>
            {
                let offered =
                    crate::skill_install::offer(self, media, message.channel, file, name, now)
                        .await?;
                return Ok(answered(OutboxEntry {
                    channel: message.channel,
                    chat: message.chat.clone(),
                    message: offered,
                }));
            }
            // Documents are read by the local-inference tools (a later step); until then the
            // model hears about them only as a note.
            Content::Document { name, caption, .. } => format!("[a document {name}] {caption}"),
        };
        if let Some(command) = commands::parse(&text) {
            if command.name == "say" {
                let said = self.say(message, &command.rest, now).await;
                return Ok(answered(said));
            }
            if command.name == "install_skill" {
                let owner = user.role == Role::Owner;
                let offered =
                    crate::skill_install::offer_link(self, owner, &command.args, now).await?;
                return Ok(answered(OutboxEntry {
                    channel: message.channel,
                    chat: message.chat.clone(),
                    message: offered,
                }));
            }
            let (text, effect) = commands::run(self, &user, &message.chat, &command, now).await?;
            let mut replies = vec![reply(text)];
            // The command carried a secret: its message leaves the chat before the answer.
            let effect = match effect {
                Effect::DeleteCommandMessage => {
                    replies.insert(
                        0,
                        OutboxEntry {
                            channel: message.channel,
                            chat: message.chat.clone(),
                            message: Outgoing::Delete {
                                message_id: message.message_id.clone(),
                            },
                        },
                    );
                    Effect::None
                }
                effect => effect,
            };
            return Ok(Handled {
                answer: Answer {
                    replies,
                    history: None,
                },
                effect,
            });
        }
        let asked = UserTurn { text, images };
        let mut handled = self.turn(brain, &user, message, asked, now).await?;
        if let Some(language) = spoken_in {
            self.speak_reply(&mut handled.answer, message, &language, now)
                .await;
        }
        Ok(handled)
    }

    /// The owner spoke, so the answer is spoken too: a voice note made on the box goes before
    /// the text (which stays, to read and search). A long answer, one to a note in a language
    /// the box's voice does not speak, or one the engine cannot speak goes as text alone; the
    /// audit log says which.
    async fn speak_reply(
        &mut self,
        answer: &mut Answer,
        message: &Incoming,
        language: &str,
        now: u64,
    ) {
        let Some((at, text)) = answer
            .replies
            .iter()
            .enumerate()
            .rev()
            .find_map(|(at, reply)| match &reply.message {
                Outgoing::Text(text) => Some((at, text.clone())),
                _ => None,
            })
        else {
            return;
        };
        let to = format!("{} {}", message.channel.name(), message.sender);
        if language != VOICE_LANGUAGE {
            self.record(
                "voice",
                &format!(
                    "the reply to {to} went as text only: the voice note was in {language}, and \
                     the box's voice speaks {VOICE_LANGUAGE}"
                ),
                now,
            );
            return;
        }
        let characters = text.chars().count();
        if characters > SPOKEN_REPLY_MAX_CHARS {
            self.record(
                "voice",
                &format!(
                    "the reply to {to} went as text only: {characters} characters is more than \
                     the {SPOKEN_REPLY_MAX_CHARS} a voice note carries"
                ),
                now,
            );
            return;
        }
        match self.inference.speak(&text).await {
            Ok(audio) => {
                self.record(
                    "voice",
                    &format!(
                        "the reply to {to} was spoken on the box ({characters} characters, {} \
                         bytes of Ogg Opus)",
                        audio.len()
                    ),
                    now,
                );
                answer.replies.insert(
                    at,
                    OutboxEntry {
                        channel: message.channel,
                        chat: message.chat.clone(),
                        message: Outgoing::Voice(audio),
                    },
                );
            }
            Err(error) => {
                eprintln!("agent: the reply to {to} goes as text only: {error}");
                self.record(
                    "voice",
                    &format!(
                        "the reply to {to} went as text only: it could not be spoken ({error})"
                    ),
                    now,
                );
            }
        }
    }

    /// A photo read by the engine's OCR on the box, and described there too when `describe`
    /// and the engine has a description model; the image goes to the model too where this
    /// chat's photos are shared (`shared`: since when). Or what to tell the sender when it
    /// could not be read. The audit log says what was done and where the image went.
    async fn read_photo<M: Media>(
        &mut self,
        media: &M,
        message: &Incoming,
        file: &FileRef,
        describe: bool,
        shared: Option<u64>,
        now: u64,
    ) -> Result<ReadPhoto, String> {
        let image = media
            .download(message.channel, file)
            .await
            .map_err(|error| format!("I could not fetch that photo: {error}"))?;
        let text = self
            .inference
            .read_text(image.clone())
            .await
            .map_err(|error| format!("I could not read that photo: {error}"))?;
        let text = text.trim().to_string();
        // A description is extra: the photo's text goes to the model without it.
        let description = match describe {
            false => None,
            true => self
                .inference
                .describe(image.clone())
                .await
                .unwrap_or_else(|error| {
                    eprintln!("agent: a photo goes undescribed: {error}");
                    None
                }),
        };
        let described = match &description {
            Some(description) => format!(
                " and described there ({} characters)",
                description.chars().count()
            ),
            None => String::new(),
        };
        let (shown, went) = match shared.map(|since| (since, Image::new(image))) {
            None => (None, "the image did not leave it".to_string()),
            Some((since, Ok(shown))) => {
                let went = format!(
                    "the image ({} bytes) goes to the model too, as the owner allows in this \
                     chat since {since}",
                    shown.bytes.len()
                );
                (Some(shown), went)
            }
            Some((_, Err(why))) => (
                None,
                format!("this chat shares photos, but this one stayed on the box: {why}"),
            ),
        };
        self.record(
            "photo",
            &format!(
                "a photo from {} {} was read on the box ({} characters of text){described}; \
                 {went}",
                message.channel.name(),
                message.sender,
                text.chars().count()
            ),
            now,
        );
        Ok(ReadPhoto {
            text,
            description,
            shown,
        })
    }

    /// `/say <text>`: the text spoken by the box's own voice, sent back as a voice note (no
    /// model involved); or why it could not be.
    async fn say(&mut self, message: &Incoming, text: &str, now: u64) -> OutboxEntry {
        let entry = |message_out| OutboxEntry {
            channel: message.channel,
            chat: message.chat.clone(),
            message: message_out,
        };
        let characters = text.chars().count();
        if text.trim().is_empty() {
            return entry(Outgoing::Text(
                "Send /say and the words to speak: /say good morning".into(),
            ));
        }
        if characters > SPOKEN_REPLY_MAX_CHARS {
            return entry(Outgoing::Text(format!(
                "That is {characters} characters; I speak at most {SPOKEN_REPLY_MAX_CHARS} at once."
            )));
        }
        match self.inference.speak(text).await {
            Ok(audio) => {
                self.record(
                    "voice",
                    &format!(
                        "/say for {} {} was spoken on the box ({characters} characters)",
                        message.channel.name(),
                        message.sender
                    ),
                    now,
                );
                entry(Outgoing::Voice(audio))
            }
            Err(error) => entry(Outgoing::Text(format!("I could not speak that: {error}"))),
        }
    }

    /// The words of a voice note, transcribed by the local engine; or what to tell the sender
    /// when that failed.
    async fn hear<M: Media>(
        &mut self,
        media: &M,
        message: &Incoming,
        file: &FileRef,
        seconds: u32,
        now: u64,
    ) -> Result<Heard, String> {
        let audio = media
            .download(message.channel, file)
            .await
            .map_err(|error| format!("I could not fetch that voice note: {error}"))?;
        let failed = |error: Error| format!("I could not hear that voice note: {error}");
        // Silence or noise is answered at once: Whisper would take its full time on a slow
        // box to find nothing (or to make words up from the noise).
        let speech = self
            .inference
            .speech_seconds(audio.clone())
            .await
            .map_err(failed)?;
        if speech <= 0.0 {
            self.record(
                "voice",
                &format!(
                    "a {seconds} s voice note from {} {} held no speech (voice activity, on the \
                     box); it was not transcribed and the audio did not leave the box",
                    message.channel.name(),
                    message.sender,
                ),
                now,
            );
            return Err("I heard no speech in that voice note.".into());
        }
        let heard = self.inference.transcribe(audio).await.map_err(failed)?;
        self.record(
            "voice",
            &format!(
                "a {seconds} s voice note from {} {} was transcribed on the box ({} characters, \
                 {}); the audio did not leave it",
                message.channel.name(),
                message.sender,
                heard.text.len(),
                heard.language,
            ),
            now,
        );
        if heard.text.trim().is_empty() {
            return Err("I heard no words in that voice note.".into());
        }
        Ok(heard)
    }

    fn stranger(&mut self, message: &Incoming, now: u64) -> Result<Handled, Error> {
        let outcome = self.guard.check(&self.store, message, now)?;
        let mut answer = Answer::default();
        match outcome {
            Outcome::Paired(user) => {
                let role = match user.role {
                    Role::Owner => "owner",
                    Role::User => "user",
                };
                self.record(
                    "pairing",
                    &format!(
                        "{} {} paired as {role} ({})",
                        user.channel.name(),
                        user.id,
                        user.name
                    ),
                    now,
                );
                println!(
                    "pairing: {} {} is now the {role}",
                    user.channel.name(),
                    user.id
                );
                // The owner learns at once that /data has a recovery key to keep.
                let recovery = if user.role == Role::Owner && self.recovery_key_file.exists() {
                    "\nThis box's /data is encrypted: send /recovery_key and keep the key it \
                     shows somewhere safe, off the box. It opens /data if a firmware update \
                     ever locks it."
                } else {
                    ""
                };
                answer.replies.push(OutboxEntry {
                    channel: message.channel,
                    chat: message.chat.clone(),
                    message: Outgoing::Text(format!(
                        "Paired: you are this box's {role}. Send /help to see what I can do, \
                         or just talk to me.{recovery}"
                    )),
                });
            }
            // No answer at all: a stranger learns nothing, not even that a box is here.
            Outcome::Refused | Outcome::Throttled => {}
        }
        Ok(Handled {
            answer,
            effect: Effect::None,
        })
    }

    async fn turn<B: Brain>(
        &mut self,
        brain: &B,
        user: &User,
        message: &Incoming,
        asked: UserTurn,
        now: u64,
    ) -> Result<Handled, Error> {
        let history_key = format!("{}:{}", message.channel.name(), message.chat);
        let mut history = self.store.history(&history_key)?;
        let dropped = trim(&mut history, self.limits.history_bytes);
        if !dropped.is_empty() {
            history.summary = match brain
                .complete(&summary_request(&history.summary, &dropped))
                .await
            {
                Ok(reply) => capped_summary(&reply.text),
                Err(error) => {
                    eprintln!(
                        "agent: summarising older messages failed ({error}); they are dropped"
                    );
                    capped_summary(&format!(
                        "{} (some older messages were dropped)",
                        history.summary
                    ))
                }
            };
        }
        let system = self.system_prompt(user, message.channel, &history.summary, now)?;
        let waiting = Asked::default();
        let context = self.tool_context(message, now, &waiting);
        let outcome = run_turn(
            brain,
            &self.tools,
            &context,
            system,
            history,
            asked,
            self.limits,
        )
        .await;
        let reply_text = match outcome {
            Ok(outcome) => {
                for call in &outcome.calls {
                    let result = if call.ok { "ok" } else { "error" };
                    self.record(
                        "tool",
                        &format!(
                            "{} {} -> {result} ({} bytes)",
                            call.name, call.arguments, call.result_bytes
                        ),
                        now,
                    );
                }
                if let Some(reason) = &outcome.stopped {
                    self.record("loop-breaker", reason, now);
                }
                let mut replies = vec![OutboxEntry {
                    channel: message.channel,
                    chat: message.chat.clone(),
                    message: Outgoing::Text(outcome.reply),
                }];
                replies.extend(self.questions(&waiting, now));
                return Ok(Handled {
                    answer: Answer {
                        replies,
                        history: Some((history_key, outcome.history)),
                    },
                    effect: Effect::None,
                });
            }
            Err(error) => format!(
                "I could not reach the language model: {error}. Send your message again in a \
                 moment; /status and the other commands work without it."
            ),
        };
        let mut replies = vec![OutboxEntry {
            channel: message.channel,
            chat: message.chat.clone(),
            message: Outgoing::Text(reply_text),
        }];
        replies.extend(self.questions(&waiting, now));
        Ok(Handled {
            answer: Answer {
                replies,
                history: None,
            },
            effect: Effect::None,
        })
    }

    /// What a tool may touch while it answers `message`.
    fn tool_context<'a>(
        &'a self,
        message: &'a Incoming,
        now: u64,
        asked: &'a Asked,
    ) -> ToolContext<'a> {
        ToolContext {
            store: &self.store,
            channel: message.channel,
            chat: &message.chat,
            now,
            identity: &self.identity,
            inference: &self.inference,
            asked,
        }
    }

    /// The owner's questions for the calls a turn kept (approvals.rs), each audited.
    fn questions(&mut self, asked: &Asked, now: u64) -> Vec<OutboxEntry> {
        let mut questions = Vec::new();
        for pending in asked.take() {
            self.record(
                "approval",
                &format!(
                    "asked the owner about {} {}",
                    pending.tool, pending.arguments
                ),
                now,
            );
            let (text, buttons) = approvals::question(&pending);
            questions.push(OutboxEntry {
                channel: pending.channel,
                chat: pending.chat.clone(),
                message: Outgoing::Choice { text, buttons },
            });
        }
        questions
    }

    /// A press on a question's button: only the owner's counts. Never sets the tool's policy;
    /// otherwise the kept call runs and its result goes to the model in a new turn, so that it
    /// can finish what it was asked.
    async fn answer_button<B: Brain>(
        &mut self,
        brain: &B,
        user: &User,
        message: &Incoming,
        data: &str,
        now: u64,
    ) -> Result<Handled, Error> {
        let reply = |text: String| {
            answered(OutboxEntry {
                channel: message.channel,
                chat: message.chat.clone(),
                message: Outgoing::Text(text),
            })
        };
        let install = crate::skill_install::read_button(data);
        let approval = approvals::read_button(data);
        if install.is_none() && approval.is_none() {
            return Ok(reply("That button is not one of mine.".into()));
        }
        if user.role != Role::Owner {
            return Ok(reply("Only the owner can answer that.".into()));
        }
        if let Some((id, install)) = install {
            let told = crate::skill_install::answer(self, id, install, now).await?;
            return Ok(reply(told));
        }
        let Some((id, choice)) = approval else {
            return Ok(reply("That button is not one of mine.".into()));
        };
        let Some(pending) = approvals::answer(&self.store, id, choice)? else {
            return Ok(reply("That question was answered already.".into()));
        };
        self.record(
            "approval",
            &format!(
                "the owner chose {choice:?} for {} {}",
                pending.tool, pending.arguments
            ),
            now,
        );
        if choice == Choice::Never {
            return Ok(reply(format!(
                "{} will not run; /tools changes that.",
                pending.tool
            )));
        }
        let asked = Asked::default();
        let context = self.tool_context(message, now, &asked);
        let result = self
            .tools
            .call_approved(&context, &pending.tool, &pending.arguments)
            .await;
        let (outcome, said) = match &result {
            Ok(text) => ("ok", format!("answered:\n{text}")),
            Err(text) => ("error", format!("failed:\n{text}")),
        };
        self.record(
            "tool",
            &format!(
                "{} {} -> {outcome} ({} bytes), allowed by the owner",
                pending.tool,
                pending.arguments,
                said.len()
            ),
            now,
        );
        let text = format!(
            "[The owner allowed {}; it ran with {} and {said}]",
            pending.tool, pending.arguments
        );
        let asked = UserTurn {
            text,
            images: Vec::new(),
        };
        self.turn(brain, user, message, asked, now).await
    }

    /// Small on purpose: it and the tool schemas go with every request.
    fn system_prompt(
        &self,
        user: &User,
        channel: ChannelKind,
        summary: &str,
        now: u64,
    ) -> Result<String, Error> {
        let who = match user.role {
            Role::Owner => "its owner",
            Role::User => "a user its owner invited",
        };
        let mut prompt = format!(
            "You are the agent on {host}, a Carapace box, talking with {who} ({name}) over {channel}. \
             Answer briefly and plainly. Use the tools for facts about the box, reminders and \
             things to remember; never make those up. The time is {now} (Unix seconds, UTC).",
            host = self.hostname,
            name = user.name,
            channel = channel.name(),
        );
        let facts = self.store.facts()?;
        if !facts.is_empty() {
            prompt.push_str("\nFacts you were asked to keep:");
            for (id, fact) in facts {
                prompt.push_str(&format!("\n{id}. {fact}"));
            }
        }
        if !self.skills.catalog.is_empty() {
            prompt.push('\n');
            prompt.push_str(&self.skills.catalog.prompt_section(SKILLS_PROMPT_BYTES));
        }
        if !summary.is_empty() {
            prompt.push_str("\nEarlier in this chat: ");
            prompt.push_str(summary);
        }
        Ok(prompt)
    }
}
