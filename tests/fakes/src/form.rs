//! Request parameters read the way the real services accept them: a query string, a
//! url-encoded form, a JSON object or multipart/form-data (file uploads). A fake that accepted
//! only the encoding our client happens to use would not notice the client changing it.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::Request;
use hyper::header::CONTENT_TYPE;
use serde_json::Value;

/// A file sent as one part of a multipart body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The parameters of one request. Form and query values are JSON strings; a JSON body keeps
/// its types, so the accessors accept both spellings (`"chat_id": 5` and `chat_id=5`).
#[derive(Debug, Default)]
pub struct Params {
    fields: HashMap<String, Value>,
    files: HashMap<String, Upload>,
}

impl Params {
    /// Query parameters first; body parameters of the same name win.
    pub fn from_request(request: &Request<Bytes>) -> Result<Params, String> {
        let mut params = Params::default();
        if let Some(query) = request.uri().query() {
            params.add_urlencoded(query.as_bytes());
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let body = request.body();
        if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(object)) => params.fields.extend(object),
                Ok(_) => return Err("the JSON body is not an object".into()),
                Err(error) => return Err(format!("the JSON body does not parse: {error}")),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            params.add_urlencoded(body);
        } else if content_type.starts_with("multipart/form-data") {
            let boundary = boundary(request).ok_or("multipart without a boundary")?;
            params.add_multipart(body, &boundary)?;
        }
        Ok(params)
    }

    fn add_urlencoded(&mut self, text: &[u8]) {
        for (name, value) in url::form_urlencoded::parse(text) {
            self.fields
                .insert(name.into_owned(), Value::String(value.into_owned()));
        }
    }

    fn add_multipart(&mut self, body: &[u8], boundary: &str) -> Result<(), String> {
        for part in multipart_parts(body, boundary)? {
            match part.file_name {
                Some(file_name) => {
                    self.files.insert(
                        part.name,
                        Upload {
                            file_name,
                            content_type: part.content_type,
                            bytes: part.bytes.to_vec(),
                        },
                    );
                }
                None => {
                    let text = String::from_utf8_lossy(part.bytes).into_owned();
                    self.fields.insert(part.name, Value::String(text));
                }
            }
        }
        Ok(())
    }

    /// A string parameter; a JSON number is given as its decimal text.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.fields.get(name)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A structured parameter: JSON in a JSON body, JSON-serialized text in a form (the Bot
    /// API's rule for arrays and objects).
    pub fn json(&self, name: &str) -> Option<Value> {
        match self.fields.get(name)? {
            Value::String(text) => serde_json::from_str(text).ok(),
            other => Some(other.clone()),
        }
    }

    pub fn file(&self, name: &str) -> Option<&Upload> {
        self.files.get(name)
    }
}

fn boundary(request: &Request<Bytes>) -> Option<String> {
    let content_type = request.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    content_type.split(';').find_map(|item| {
        let (key, value) = item.trim().split_once('=')?;
        key.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_string())
    })
}

struct Part<'a> {
    name: String,
    file_name: Option<String>,
    content_type: String,
    bytes: &'a [u8],
}

/// The parts of a multipart/form-data body (RFC 7578): each is `--boundary CRLF headers CRLF
/// CRLF content`, ended by `CRLF --boundary`, and the last delimiter carries a `--` suffix.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let delimiter = format!("--{boundary}");
    let next_part = format!("\r\n--{boundary}");
    let mut rest = match find(body, delimiter.as_bytes()) {
        Some(start) => &body[start + delimiter.len()..],
        None => return Err("no multipart delimiter in the body".into()),
    };
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("a multipart delimiter not followed by CRLF")?;
        let header_end = find(rest, b"\r\n\r\n").ok_or("a multipart part without a blank line")?;
        let headers = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        rest = &rest[header_end + 4..];
        let content_end =
            find(rest, next_part.as_bytes()).ok_or("an unterminated multipart part")?;
        parts.push(part(&headers, &rest[..content_end])?);
        rest = &rest[content_end + next_part.len()..];
    }
}

fn part<'a>(headers: &str, bytes: &'a [u8]) -> Result<Part<'a>, String> {
    let mut name = None;
    let mut file_name = None;
    let mut content_type = String::new();
    for line in headers.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content-type") {
            content_type = value.trim().to_string();
        } else if key.trim().eq_ignore_ascii_case("content-disposition") {
            for item in value.split(';').skip(1) {
                let Some((key, value)) = item.trim().split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"').to_string();
                match key.trim() {
                    "name" => name = Some(value),
                    "filename" => file_name = Some(value),
                    _ => {}
                }
            }
        }
    }
    Ok(Part {
        name: name.ok_or("a multipart part without a name")?,
        file_name,
        content_type,
        bytes,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(content_type: &str, uri: &str, body: &[u8]) -> Request<Bytes> {
        Request::builder()
            .uri(uri)
            .header(CONTENT_TYPE, content_type)
            .body(Bytes::copy_from_slice(body))
            .unwrap()
    }

    #[test]
    fn json_form_and_query_give_the_same_answers() {
        let json = request("application/json", "/", br#"{"chat_id":-5,"text":"hi"}"#);
        let form = request(
            "application/x-www-form-urlencoded",
            "/",
            b"chat_id=-5&text=h%69",
        );
        let query = request("text/plain", "/m?chat_id=-5&text=hi", b"");
        for request in [json, form, query] {
            let params = Params::from_request(&request).unwrap();
            assert_eq!(params.int("chat_id"), Some(-5));
            assert_eq!(params.text("chat_id").as_deref(), Some("-5"));
            assert_eq!(params.text("text").as_deref(), Some("hi"));
        }
    }

    #[test]
    fn a_form_field_holding_json_is_read_as_json() {
        let form = request(
            "application/x-www-form-urlencoded",
            "/",
            b"allowed_updates=%5B%22message%22%5D",
        );
        let params = Params::from_request(&form).unwrap();
        assert_eq!(
            params.json("allowed_updates"),
            Some(serde_json::json!(["message"]))
        );
    }

    #[test]
    fn multipart_fields_and_files_with_binary_content() {
        let content = b"\r\n--xy not the end\x00\xff";
        let mut body = Vec::new();
        body.extend_from_slice(
            b"--xyz\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n42\r\n",
        );
        body.extend_from_slice(b"--xyz\r\nContent-Disposition: form-data; name=\"voice\"; filename=\"v.ogg\"\r\nContent-Type: audio/ogg\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--xyz--\r\n");
        let request = request("multipart/form-data; boundary=xyz", "/", &body);
        let params = Params::from_request(&request).unwrap();
        assert_eq!(params.int("chat_id"), Some(42));
        let upload = params.file("voice").unwrap();
        assert_eq!(upload.file_name, "v.ogg");
        assert_eq!(upload.content_type, "audio/ogg");
        assert_eq!(upload.bytes, content);
    }

    #[test]
    fn a_cut_multipart_body_is_an_error() {
        let body = b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end";
        let request = request("multipart/form-data; boundary=xyz", "/", body);
        assert!(Params::from_request(&request).is_err());
    }
}
