//! TPM 2.0 command and response framing (TCG TPM 2.0 Library, Part 1 §18 and Part 2): big-endian
//! integers, size-prefixed buffers (TPM2B), one header, a handle area, an authorization area
//! when the command carries sessions, then the parameters. The reader never panics on what a
//! device sends back: every length is checked against what is there.

use crate::error::Error;

const TAG_NO_SESSIONS: u16 = 0x8001;
const TAG_SESSIONS: u16 = 0x8002;
const HEADER_LEN: usize = 10;
/// TPM_RS_PW: the password session; with an empty password it authorizes the owner hierarchy
/// and the storage key on a TPM whose owner set none (the state every box ships in).
pub const PASSWORD_SESSION: u32 = 0x4000_0009;
/// sessionAttributes: keep a session open after this command.
const CONTINUE_SESSION: u8 = 0x01;

/// How one handle of a command is authorized.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    /// The empty password.
    Password,
    /// A session handle's authorization: the caller's nonce, the session attributes and the
    /// HMAC (empty for a session without a key).
    Session {
        session: u32,
        nonce: &'a [u8],
        attributes: u8,
        hmac: &'a [u8],
    },
}

/// A whole command, ready for the device.
pub fn command(code: u32, handles: &[u32], auths: &[Auth<'_>], params: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + params.len());
    for handle in handles {
        body.extend_from_slice(&handle.to_be_bytes());
    }
    if !auths.is_empty() {
        let mut area = Vec::new();
        for auth in auths {
            match auth {
                Auth::Password => {
                    area.extend_from_slice(&PASSWORD_SESSION.to_be_bytes());
                    put_sized(&mut area, &[]);
                    area.push(CONTINUE_SESSION);
                    put_sized(&mut area, &[]);
                }
                Auth::Session {
                    session,
                    nonce,
                    attributes,
                    hmac,
                } => {
                    area.extend_from_slice(&session.to_be_bytes());
                    put_sized(&mut area, nonce);
                    area.push(*attributes);
                    put_sized(&mut area, hmac);
                }
            }
        }
        body.extend_from_slice(&len_u32(area.len()).to_be_bytes());
        body.extend_from_slice(&area);
    }
    body.extend_from_slice(params);
    let tag = if auths.is_empty() {
        TAG_NO_SESSIONS
    } else {
        TAG_SESSIONS
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&tag.to_be_bytes());
    out.extend_from_slice(&len_u32(HEADER_LEN + body.len()).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Appends a TPM2B: a u16 size, then the bytes (callers keep them far below 64 KiB).
pub fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    let size = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(bytes.get(..usize::from(size)).unwrap_or(bytes));
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A successful response's handles and parameters.
#[derive(Debug)]
pub struct Response<'a> {
    pub handles: Vec<u32>,
    pub params: Reader<'a>,
    /// The response's sessions (nonce, attributes, HMAC each), after the parameters.
    pub sessions: Reader<'a>,
}

/// Splits a response to `command` that returns `handles` handles; a non-zero response code
/// becomes `Error::Refused`.
pub fn response<'a>(
    command: &'static str,
    bytes: &'a [u8],
    handles: usize,
) -> Result<Response<'a>, Error> {
    let malformed = |what: &'static str| Error::Malformed { command, what };
    let mut reader = Reader::new(bytes);
    let tag = reader.u16().ok_or_else(|| malformed("short header"))?;
    let size = reader.u32().ok_or_else(|| malformed("short header"))?;
    let code = reader.u32().ok_or_else(|| malformed("short header"))?;
    if usize::try_from(size).ok() != Some(bytes.len()) {
        return Err(malformed("size field differs from the bytes read"));
    }
    if code != 0 {
        return Err(Error::Refused { command, code });
    }
    let mut found = Vec::with_capacity(handles);
    for _ in 0..handles {
        found.push(reader.u32().ok_or_else(|| malformed("missing handle"))?);
    }
    let (params, sessions) = match tag {
        TAG_SESSIONS => {
            let len = reader
                .u32()
                .ok_or_else(|| malformed("missing parameter size"))?;
            let len = usize::try_from(len).map_err(|_| malformed("parameter size"))?;
            let params = reader
                .take(len)
                .ok_or_else(|| malformed("parameters cut short"))?;
            (Reader::new(params), reader)
        }
        TAG_NO_SESSIONS => (reader, Reader::new(&[])),
        _ => return Err(malformed("unknown tag")),
    };
    Ok(Response {
        handles: found,
        params,
        sessions,
    })
}

/// Reads big-endian fields off a byte slice; `None` once it runs out.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(rest: &'a [u8]) -> Reader<'a> {
        Reader { rest }
    }

    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(len)?;
        self.rest = tail;
        Some(head)
    }

    pub fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    /// A TPM2B's contents.
    pub fn sized(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// A TPM2B with its size prefix, as the TPM wants it back later (TPM2B_PRIVATE, _PUBLIC).
    pub fn sized_whole(&mut self) -> Option<&'a [u8]> {
        let start = self.rest;
        let len = self.u16()?;
        self.take(usize::from(len))?;
        start.get(..2 + usize::from(len))
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// What is left to read, as it is.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_has_its_header_handles_sessions_and_parameters() {
        let bytes = command(0x0000_015E, &[0x8000_0001], &[Auth::Password], &[0xAB]);
        let expected = [
            0x80, 0x02, // TPM_ST_SESSIONS
            0, 0, 0, 0x1C, // 28 bytes
            0, 0, 0x01, 0x5E, // TPM2_Unseal
            0x80, 0, 0, 0x01, // the item
            0, 0, 0, 0x09, // authorization area size
            0x40, 0, 0, 0x09, 0, 0, 0x01, 0, 0, // TPM_RS_PW, no nonce, continue, no password
            0xAB,
        ];
        assert_eq!(bytes, expected);
        let plain = command(0x0000_0165, &[], &[], &[0x80, 0, 0, 2]);
        assert_eq!(
            plain,
            [0x80, 0x01, 0, 0, 0, 14, 0, 0, 1, 0x65, 0x80, 0, 0, 2]
        );
    }

    #[test]
    fn a_response_is_split_into_handles_and_parameters() {
        let bytes = [
            0x80, 0x02, 0, 0, 0, 0x1B, 0, 0, 0, 0, // header, success
            0x80, 0, 0, 0x02, // handle
            0, 0, 0, 0x04, // parameter size
            0, 0x02, 0xCA, 0xFE, // TPM2B
            0, 0, 0x01, 0, 0, // response session: nonce, attributes, hmac
        ];
        let mut response = response("Load", &bytes, 1).expect("parses");
        assert_eq!(response.handles, [0x8000_0002]);
        assert_eq!(response.params.sized(), Some(&[0xCA, 0xFE][..]));
        assert!(response.params.is_empty());
    }

    #[test]
    fn a_refusal_keeps_its_code_and_bad_frames_are_errors() {
        let refused = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x9D];
        assert!(matches!(
            response("Unseal", &refused, 0),
            Err(Error::Refused { code: 0x99D, .. })
        ));
        for bad in [
            &[0x80, 0x01, 0, 0][..],
            &[0x80, 0x01, 0, 0, 0, 11, 0, 0, 0, 0][..],
            &[0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0][..], // a handle promised, none sent
            &[
                0x80, 0x02, 0, 0, 0, 18, 0, 0, 0, 0, 0x80, 0, 0, 1, 0, 0, 0, 9,
            ][..],
        ] {
            assert!(matches!(
                response("Load", bad, 1),
                Err(Error::Malformed { .. })
            ));
        }
    }

    /// The reader survives every truncation and random garbage (a fixed seed, so stable Rust
    /// runs what the fuzz target runs).
    #[test]
    fn the_reader_survives_random_and_truncated_responses() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 6 && next() % 2 == 0 {
                bytes[2..6].copy_from_slice(&(len as u32).to_be_bytes());
                bytes[0] = 0x80;
                bytes[1] = 1 + (next() % 2) as u8;
            }
            if let Ok(mut r) = response("x", &bytes, (next() % 3) as usize) {
                let _ = (r.params.sized_whole(), r.params.sized(), r.params.u32());
                let _ = (r.sessions.sized(), r.sessions.take(1), r.sessions.sized());
            }
        }
    }
}
