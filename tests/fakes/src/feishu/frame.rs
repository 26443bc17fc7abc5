//! The long connection's protobuf frame (`pbbp2.Frame`, larksuite/oapi-sdk-go `ws/`), written
//! for the fake on its own rather than shared with the client, so that a mistake on one side
//! cannot hide the same mistake on the other. Both are checked against bytes encoded by hand.

use prost::Message;

pub(super) const CONTROL: i32 = 0;
pub(super) const DATA: i32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// Fields 1–4 are required in the schema (the server's decoder insists on them); 6, 7 and 9
/// are optional but always written by the SDK.
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
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|header| header.key == key)
            .map(|header| header.value.as_str())
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Frame> {
        Frame::decode(bytes).ok()
    }
}

pub(super) fn header(key: &str, value: &str) -> Header {
    Header {
        key: key.into(),
        value: value.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pong_is_encoded_as_the_protobuf_rules_say() {
        let pong = Frame {
            seq_id: 1,
            log_id: 300,
            service: 2,
            method: CONTROL,
            headers: vec![header("type", "pong")],
            payload: Some(b"{}".to_vec()),
            ..Frame::default()
        };
        let expected: &[u8] = &[
            0x08, 0x01, // SeqID 1
            0x10, 0xac, 0x02, // LogID 300
            0x18, 0x02, // service 2
            0x20, 0x00, // method 0
            0x2a, 0x0c, 0x0a, 0x04, b't', b'y', b'p', b'e', 0x12, 0x04, b'p', b'o', b'n', b'g',
            0x32, 0x00, 0x3a, 0x00, // payload_encoding, payload_type
            0x42, 0x02, b'{', b'}', // payload
            0x4a, 0x00, // LogIDNew
        ];
        assert_eq!(pong.to_bytes(), expected);
        assert_eq!(Frame::from_bytes(expected), Some(pong));
    }
}
