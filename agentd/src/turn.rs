//! One turn: the owner's message, the model, the tools it asks for, until it answers in words,
//! with a loop breaker: at most [`TurnLimits::max_rounds`] rounds of tool calls, and the same
//! call (name and arguments) at most [`TurnLimits::max_repeats`] times. A model that loops is
//! stopped, and the owner is told which call it repeated.

use std::collections::HashMap;
use std::future::Future;

use carapace_llm::{Image, Message, Reply, Request, ToolCall};

use crate::store::History;
use crate::tools::{Registry, ToolContext};

/// What the turn needs from the model (the LLM client, or a scripted one in tests).
pub trait Brain {
    fn complete(&self, request: &Request) -> impl Future<Output = Result<Reply, String>>;
}

#[derive(Clone, Copy, Debug)]
pub struct TurnLimits {
    pub max_rounds: usize,
    pub max_repeats: usize,
    /// The most bytes of history (as JSON) sent with each request; older turns are summarised.
    pub history_bytes: usize,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits {
            max_rounds: 6,
            max_repeats: 2,
            history_bytes: 4096,
        }
    }
}

/// A tool call as it happened, for the audit log.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRecord {
    pub name: String,
    pub arguments: String,
    pub ok: bool,
    pub result_bytes: usize,
}

#[derive(Debug)]
pub struct TurnOutcome {
    pub reply: String,
    pub history: History,
    pub calls: Vec<CallRecord>,
    /// Why the loop breaker stopped the turn, when it did.
    pub stopped: Option<String>,
    /// The size of each request sent to the model.
    pub bytes_sent: Vec<usize>,
}

/// The sender's words, and the images the model may see with them: those go with this turn's
/// requests only, and the history keeps the words.
pub struct UserTurn {
    pub text: String,
    pub images: Vec<Image>,
}

pub async fn run_turn<B: Brain>(
    brain: &B,
    registry: &Registry,
    context: &ToolContext<'_>,
    system: String,
    mut history: History,
    user: UserTurn,
    limits: TurnLimits,
) -> Result<TurnOutcome, String> {
    let asked_at = history.messages.len();
    history.messages.push(Message::user(user.text));
    let tools = registry.specs();
    let mut calls = Vec::new();
    let mut bytes_sent = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut stopped = None;
    let mut reply_text = String::new();
    for _round in 0..limits.max_rounds {
        let mut messages = history.messages.clone();
        if let Some(Message::User { images, .. }) = messages.get_mut(asked_at) {
            images.clone_from(&user.images);
        }
        let request = Request {
            system: system.clone(),
            messages,
            tools: tools.clone(),
        };
        let reply = brain.complete(&request).await?;
        bytes_sent.push(reply.bytes_sent);
        if reply.tool_calls.is_empty() {
            reply_text = reply.text.clone();
            history.messages.push(Message::Assistant {
                text: reply.text,
                tool_calls: Vec::new(),
            });
            break;
        }
        history.messages.push(Message::Assistant {
            text: reply.text,
            tool_calls: reply.tool_calls.clone(),
        });
        for call in &reply.tool_calls {
            if stopped.is_some() {
                // Every call needs a result, or the provider rejects the next request.
                history.messages.push(not_run(call));
                continue;
            }
            let signature = format!("{} {}", call.name, call.arguments);
            let count = seen.entry(signature).or_insert(0);
            *count += 1;
            if *count > limits.max_repeats {
                stopped = Some(format!(
                    "the model asked for {} with the same arguments {} times",
                    call.name, count
                ));
                history.messages.push(not_run(call));
                continue;
            }
            let outcome = registry.call(context, &call.name, &call.arguments).await;
            let (content, ok) = match outcome {
                Ok(text) => (text, true),
                Err(text) => (text, false),
            };
            calls.push(CallRecord {
                name: call.name.clone(),
                arguments: call.arguments.to_string(),
                ok,
                result_bytes: content.len(),
            });
            history.messages.push(Message::ToolResult {
                call_id: call.id.clone(),
                content,
                is_error: !ok,
            });
        }
        if stopped.is_some() {
            break;
        }
    }
    if reply_text.is_empty() && stopped.is_none() {
        stopped = Some(format!(
            "the model was still calling tools after {} rounds",
            limits.max_rounds
        ));
    }
    if let Some(reason) = &stopped {
        reply_text = format!("I stopped this task: {reason}. Tell me how to go on.");
        history.messages.push(Message::Assistant {
            text: reply_text.clone(),
            tool_calls: Vec::new(),
        });
    }
    Ok(TurnOutcome {
        reply: reply_text,
        history,
        calls,
        stopped,
        bytes_sent,
    })
}

fn not_run(call: &ToolCall) -> Message {
    Message::ToolResult {
        call_id: call.id.clone(),
        content: "not run: the loop breaker stopped this turn".into(),
        is_error: true,
    }
}

/// When the history is over `budget` bytes, cuts it to half the budget (so the summary that
/// folds the cut part in is asked for once every several turns, not on every turn), cutting
/// only before a user message (so no tool result loses its call); returns what was cut,
/// oldest first.
pub fn trim(history: &mut History, budget: usize) -> Vec<Message> {
    let size = |m: &Message| serde_json::to_vec(m).map_or(0, |b| b.len());
    let mut total: usize = history.messages.iter().map(size).sum();
    if total <= budget {
        return Vec::new();
    }
    let mut cut = 0;
    while total > budget / 2 {
        // The next user message after the first one: everything before it goes.
        let next_start = history
            .messages
            .iter()
            .enumerate()
            .skip(cut + 1)
            .find(|(_, m)| matches!(m, Message::User { .. }))
            .map(|(i, _)| i);
        let Some(next) = next_start else {
            break;
        };
        total -= history.messages[cut..next].iter().map(size).sum::<usize>();
        cut = next;
    }
    history.messages.drain(..cut).collect()
}

/// The request that folds dropped messages into the running summary.
/// The longest summary kept: it goes with every request.
pub const SUMMARY_MAX_CHARS: usize = 800;

/// `summary` within [`SUMMARY_MAX_CHARS`] (a model may ignore the length it was asked for).
pub fn capped_summary(summary: &str) -> String {
    match summary.char_indices().nth(SUMMARY_MAX_CHARS) {
        Some((at, _)) => format!("{}…", &summary[..at]),
        None => summary.to_string(),
    }
}

pub fn summary_request(previous: &str, dropped: &[Message]) -> Request {
    let mut transcript = String::new();
    for message in dropped {
        match message {
            Message::User { text, .. } => transcript.push_str(&format!("Owner: {text}\n")),
            Message::Assistant { text, .. } if !text.is_empty() => {
                transcript.push_str(&format!("Agent: {text}\n"))
            }
            _ => {}
        }
    }
    Request {
        system: "Summarise this conversation for your own later reference in under 600 \
                 characters. Keep names, decisions, promises and open questions."
            .into(),
        messages: vec![Message::user(format!(
            "Earlier summary: {previous}\n\nMore conversation:\n{transcript}"
        ))],
        tools: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use carapace_im::ChannelKind;
    use carapace_llm::Usage;
    use serde_json::json;

    use super::*;
    use crate::store::Store;

    struct Scripted {
        replies: RefCell<VecDeque<Reply>>,
        requests: RefCell<Vec<Request>>,
    }

    impl Brain for Scripted {
        async fn complete(&self, request: &Request) -> Result<Reply, String> {
            self.requests.borrow_mut().push(request.clone());
            self.replies
                .borrow_mut()
                .pop_front()
                .ok_or_else(|| "script ran out".to_string())
        }
    }

    fn reply(text: &str, calls: Vec<ToolCall>) -> Reply {
        Reply {
            text: text.into(),
            tool_calls: calls,
            usage: Usage::default(),
            provider: 0,
            bytes_sent: 100,
        }
    }

    fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }

    async fn turn(script: Vec<Reply>, store: &Store) -> (TurnOutcome, Vec<Request>) {
        turn_with(script, store, Vec::new()).await
    }

    async fn turn_with(
        script: Vec<Reply>,
        store: &Store,
        images: Vec<Image>,
    ) -> (TurnOutcome, Vec<Request>) {
        let brain = Scripted {
            replies: RefCell::new(script.into()),
            requests: RefCell::new(Vec::new()),
        };
        // Nothing listens on port 9: these turns never reach the engine.
        let inference = crate::local_inference::LocalInference::new(
            carapace_http::Url::parse("http://127.0.0.1:9").unwrap(),
        )
        .unwrap();
        let context = ToolContext {
            store,
            channel: ChannelKind::Telegram,
            chat: "42",
            now: 1000,
            identity: "ed25519:00",
            inference: &inference,
            asked: &crate::approvals::Asked::default(),
        };
        let outcome = run_turn(
            &brain,
            &Registry::standard(),
            &context,
            "system".into(),
            History::default(),
            UserTurn {
                text: "remind me".into(),
                images,
            },
            TurnLimits::default(),
        )
        .await
        .unwrap();
        (outcome, brain.requests.into_inner())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn images_go_with_every_round_of_their_turn_and_the_history_keeps_only_words() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let photo = Image {
            media_type: "image/jpeg".into(),
            bytes: vec![0xff, 0xd8, 0xff],
        };
        let script = vec![
            reply("", vec![call("c1", "device_status", json!({}))]),
            reply("A receipt.", vec![]),
        ];
        let (outcome, requests) =
            runtime().block_on(turn_with(script, &store, vec![photo.clone()]));
        assert_eq!(requests.len(), 2);
        for request in &requests {
            assert!(
                matches!(&request.messages[0], Message::User { images, .. } if *images == [photo.clone()]),
                "{:?}",
                request.messages[0]
            );
        }
        assert!(
            matches!(&outcome.history.messages[0], Message::User { images, .. } if images.is_empty())
        );
        let stored = serde_json::to_string(&outcome.history.messages[0]).unwrap();
        assert_eq!(stored, r#"{"User":{"text":"remind me"}}"#);
    }

    #[test]
    fn a_tool_call_runs_and_its_result_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let script = vec![
            reply(
                "",
                vec![call(
                    "c1",
                    "set_reminder",
                    json!({"in_seconds": 60, "text": "tea"}),
                )],
            ),
            reply("Done: tea in a minute.", vec![]),
        ];
        let (outcome, requests) = runtime().block_on(turn(script, &store));
        assert_eq!(outcome.reply, "Done: tea in a minute.");
        assert!(outcome.stopped.is_none());
        assert_eq!(store.reminders().unwrap()[0].1.due, 1060);
        let Message::ToolResult {
            call_id, is_error, ..
        } = &requests[1].messages[2]
        else {
            panic!("{:?}", requests[1].messages);
        };
        assert_eq!((call_id.as_str(), *is_error), ("c1", false));
        assert_eq!(outcome.calls.len(), 1);
    }

    #[test]
    fn the_same_call_a_third_time_is_stopped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let same = || reply("", vec![call("x", "list_reminders", json!({}))]);
        let (outcome, requests) =
            runtime().block_on(turn(vec![same(), same(), same(), same()], &store));
        assert_eq!(requests.len(), 3);
        assert_eq!(outcome.calls.len(), 2);
        let reason = outcome.stopped.unwrap();
        assert!(
            reason.contains("list_reminders") && reason.contains("3 times"),
            "{reason}"
        );
        assert!(outcome.reply.starts_with("I stopped this task"));
    }

    #[test]
    fn rounds_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let script = (0..10)
            .map(|i| reply("", vec![call("x", "cancel_reminder", json!({"id": i}))]))
            .collect();
        let (outcome, requests) = runtime().block_on(turn(script, &store));
        assert_eq!(requests.len(), TurnLimits::default().max_rounds);
        assert!(outcome.stopped.unwrap().contains("rounds"));
    }

    #[test]
    fn trimming_cuts_before_a_user_message() {
        let mut history = History::default();
        for i in 0..20 {
            history
                .messages
                .push(Message::user(format!("question {i} {}", "x".repeat(100))));
            history.messages.push(Message::Assistant {
                text: "".into(),
                tool_calls: vec![call("c", "device_status", json!({}))],
            });
            history.messages.push(Message::ToolResult {
                call_id: "c".into(),
                content: "{}".into(),
                is_error: false,
            });
            history.messages.push(Message::Assistant {
                text: "answer".into(),
                tool_calls: vec![],
            });
        }
        let dropped = trim(&mut history, 1000);
        assert!(!dropped.is_empty());
        // Under the budget again, nothing more is cut until it is over again.
        assert!(trim(&mut history, 1000).is_empty());
        assert!(matches!(history.messages[0], Message::User { .. }));
        let size: usize = history
            .messages
            .iter()
            .map(|m| serde_json::to_vec(m).unwrap().len())
            .sum();
        assert!(size <= 500, "{size}");
    }
}
