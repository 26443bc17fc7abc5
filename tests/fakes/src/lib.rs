//! Fakes of the remote services a box talks to, for tests and benches. Each speaks the real
//! wire format of its service (HTTP/1.1 over TLS or plain TCP, JSON, SSE, WebSocket frames),
//! records what it was asked, and can be told to fail the way the real one does.
//!
//! `server` is the shared HTTP(S) listener and `form` reads request parameters in the
//! encodings the services accept; each service is a module of its own.

pub mod feishu;
pub mod form;
pub mod github;
pub mod llm;
pub mod mcp;
pub mod page;
pub mod server;
pub mod telegram;
pub mod test_ca;
pub mod update_server;
pub mod voice_note;
pub mod weather;
