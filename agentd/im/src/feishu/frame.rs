//! The long connection's wire format: every binary WebSocket message is one protobuf
//! `pbbp2.Frame` (larksuite/oapi-sdk-go `ws/pbbp2.pb.go`), written here as prost structs by
//! hand so that no protoc or build script enters the build.
//!
//! The schema marks SeqID, LogID, service and method (and a header's key and value) required:
//! the server's decoder refuses a frame without them, so they are always written, zeros
//! included. payload_encoding, payload_type and LogIDNew are optional in the schema, but the
//! SDK always writes them; we do too, so our frames are byte for byte the SDK's.

use prost::Message;

/// `method` of a control frame (ping, pong).
pub(super) const CONTROL: i32 = 0;
/// `method` of a data frame (events, and our acknowledgements of them).
pub(super) const DATA: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, required, tag = "6")]
    pub payload_encoding: String,
    #[prost(string, required, tag = "7")]
    pub payload_type: String,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, required, tag = "9")]
    pub log_id_new: String,
}

impl Frame {
    /// The keepalive the client sends every PingInterval, on the connection's service id.
    pub fn ping(service: i32) -> Frame {
        Frame {
            service,
            method: CONTROL,
            headers: vec![header("type", "ping")],
            ..Frame::default()
        }
    }

    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.key == key)
            .map(|header| header.value.as_str())
    }

    /// A header read as a number (`sum`, `seq`); missing or odd reads as None.
    pub fn number(&self, key: &str) -> Option<usize> {
        self.header(key)?.trim().parse().ok()
    }

    /// The answer that acknowledges this data frame: the same frame (ids, service, headers),
    /// with the handling time added as `biz_rt` and the payload replaced by a 200 response
    /// carrying `answer`.
    pub fn into_ack(mut self, handling_ms: u128, answer: Answer) -> Frame {
        self.headers
            .push(header("biz_rt", &handling_ms.to_string()));
        let payload: &[u8] = match answer {
            Answer::Event => br#"{"code":200,"headers":{},"data":null}"#,
            Answer::Callback => br#"{"code":200,"headers":{},"data":"e30="}"#,
        };
        self.payload = Some(payload.to_vec());
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Frame> {
        Frame::decode(bytes).ok()
    }
}

/// What an acknowledgement's `data` carries back to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// An event: nothing (`null`), as the SDKs answer events.
    Event,
    /// A card callback (`card.action.trigger`): the callback's response, an empty object (no
    /// toast, the card left as it is). The SDKs put a handler's response here: Go marshals it
    /// into `Response.Data`, a `[]byte` that encoding/json writes as base64, so `{}` travels
    /// as "e30="; the Node SDK base64-encodes it by hand. An answer without one is said to
    /// show the owner an error on the card (larksuite/cli#2456).
    Callback,
}

pub(super) fn header(key: &str, value: &str) -> Header {
    Header {
        key: key.to_string(),
        value: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ping on service 33554678, encoded by hand from the protobuf rules (tag = field << 3 |
    /// wire type; varints little-endian in 7-bit groups): what the Go SDK writes.
    const PING: &[u8] = &[
        0x08, 0x00, // SeqID 0
        0x10, 0x00, // LogID 0
        0x18, 0xf6, 0x81, 0x80, 0x10, // service 33554678
        0x20, 0x00, // method 0 (control)
        0x2a, 0x0c, 0x0a, 0x04, b't', b'y', b'p', b'e', 0x12, 0x04, b'p', b'i', b'n', b'g', 0x32,
        0x00, // payload_encoding ""
        0x3a, 0x00, // payload_type ""
        0x4a, 0x00, // LogIDNew "" (no payload: field 8 is left out)
    ];

    #[test]
    fn a_ping_is_the_bytes_the_sdk_writes() {
        assert_eq!(Frame::ping(33_554_678).to_bytes(), PING);
        let read = Frame::from_bytes(PING).unwrap();
        assert_eq!(read, Frame::ping(33_554_678));
        assert_eq!(read.header("type"), Some("ping"));
    }

    #[test]
    fn a_data_frame_round_trips_and_its_ack_keeps_everything_but_the_payload() {
        let frame = Frame {
            seq_id: 7,
            log_id: 1 << 40,
            service: 33_554_678,
            method: DATA,
            headers: vec![
                header("type", "event"),
                header("message_id", "d3f1"),
                header("sum", "2"),
                header("seq", "1"),
            ],
            payload: Some(b"{\"schema\":\"2.0\"}".to_vec()),
            log_id_new: "log-9".into(),
            ..Frame::default()
        };
        let read = Frame::from_bytes(&frame.to_bytes()).unwrap();
        assert_eq!(read, frame);
        assert_eq!((read.number("sum"), read.number("seq")), (Some(2), Some(1)));
        assert_eq!(read.number("type"), None);

        let ack = read.clone().into_ack(12, Answer::Event);
        assert_eq!(
            (ack.seq_id, ack.log_id, ack.service),
            (7, 1 << 40, 33_554_678)
        );
        assert_eq!(ack.method, DATA);
        assert_eq!(ack.header("message_id"), Some("d3f1"));
        assert_eq!(ack.header("biz_rt"), Some("12"));
        let payload: serde_json::Value = serde_json::from_slice(&ack.payload.unwrap()).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"code": 200, "headers": {}, "data": null})
        );

        // A callback's answer is `{}` in base64: 0x7b 0x7d is 011110 110111 1101(00), e 3 0 =.
        let ack = read.into_ack(3, Answer::Callback);
        let payload: serde_json::Value = serde_json::from_slice(&ack.payload.unwrap()).unwrap();
        assert_eq!(payload["code"], 200);
        assert_eq!(payload["data"], "e30=");
    }

    #[test]
    fn required_fields_are_written_even_when_zero_and_garbage_is_refused() {
        // A frame with every field at its default still carries SeqID, LogID, service and
        // method: the server's decoder checks that they are present.
        let bytes = Frame::default().to_bytes();
        assert_eq!(&bytes[..8], &[0x08, 0, 0x10, 0, 0x18, 0, 0x20, 0]);
        assert!(Frame::from_bytes(&[0x0a, 0xff]).is_none());
    }
}
