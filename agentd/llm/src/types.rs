//! What agentd asks and what it gets back, the same for every provider.

use serde::{Deserialize, Serialize};

// The provider settings are the owner's (carapace-owner defines the settings file, which the
// builder checks too); the client takes them as they are.
pub use carapace_owner::{ApiKind, LlmProvider as ProviderSettings};

/// A tool the model may call: its name, what it does, and a JSON schema of its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// A call the model asked for. `id` is the provider's, echoed back with the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// One turn of the conversation as sent to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    User {
        text: String,
    },
    Assistant {
        text: String,
        tool_calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
}

/// One request: the system prompt, the conversation so far, and the tools on offer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// The model's answer, assembled from the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// Which provider answered (its index in the settings).
    pub provider: usize,
    /// The request body's size in bytes (the bench reports it).
    pub bytes_sent: usize,
}
