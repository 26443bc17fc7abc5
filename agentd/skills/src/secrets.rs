//! A skill's secrets (an API key, a token) never enter its code. The code writes a reference,
//! `{{secret:NAME}}`, where the value belongs in an HTTP request (the URL, a header's value,
//! the body); agentd puts the value the owner gave in as it sends the request to one of the
//! skill's approved hosts, and puts the reference back wherever the value shows up in the
//! answer. So no skill, however it is written, can hand a value to the model, the audit log or
//! its scratch directory.

/// How a reference starts and ends: `{{secret:NAME}}`.
const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";
/// The longest secret name.
const NAME_MAX: usize = 64;

/// The reference for secret `name`.
pub fn reference(name: &str) -> String {
    format!("{OPEN}{name}{CLOSE}")
}

/// A secret's name as skill.toml declares it: `WEATHER_API_KEY`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=NAME_MAX).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "secret name {name:?}: use 1 to {NAME_MAX} upper-case letters, digits and _, \
             starting with a letter"
        )),
    }
}

/// Where a value goes: a URL's values are percent-encoded, so that a value holding `&` or `#`
/// stays one query value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Url,
    Text,
}

/// `text` with each reference replaced by `value(NAME)`; `Err` is `value`'s refusal (a
/// secret the skill did not declare, or the owner did not give). Text without references
/// comes back unchanged.
pub fn fill(
    text: &str,
    context: Context,
    value: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut filled = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        // An opening with no name after it is left as it is: not a reference.
        let Some(end) = after
            .find(CLOSE)
            .filter(|&end| check_name(&after[..end]).is_ok())
        else {
            filled.push_str(&rest[..at + OPEN.len()]);
            rest = after;
            continue;
        };
        let found = value(&after[..end])?;
        filled.push_str(&rest[..at]);
        match context {
            Context::Url => filled.push_str(&url_encoded(&found)),
            Context::Text => filled.push_str(&found),
        }
        rest = &after[end + CLOSE.len()..];
    }
    filled.push_str(rest);
    Ok(filled)
}

/// `value` as it stands in a URL: percent-encoded as a form value (a space is `+`).
pub fn url_encoded(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// `bytes` with every occurrence of each value replaced by its secret's reference.
pub fn scrub(bytes: &[u8], values: &[(&str, &str)]) -> Vec<u8> {
    let mut scrubbed = bytes.to_vec();
    for (name, value) in values {
        if value.is_empty() {
            continue;
        }
        let value = value.as_bytes();
        let mark = reference(name).into_bytes();
        let mut out = Vec::with_capacity(scrubbed.len());
        let mut at = 0;
        while at < scrubbed.len() {
            if scrubbed[at..].starts_with(value) {
                out.extend_from_slice(&mark);
                at += value.len();
            } else {
                out.push(scrubbed[at]);
                at += 1;
            }
        }
        scrubbed = out;
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(name: &str) -> Result<String, String> {
        match name {
            "KEY" => Ok("k&y 1".into()),
            "TOKEN" => Ok("t0k".into()),
            other => Err(format!("no {other}")),
        }
    }

    #[test]
    fn references_are_filled_and_urls_get_encoded_values() {
        let header = fill("Bearer {{secret:TOKEN}}", Context::Text, given).unwrap();
        assert_eq!(header, "Bearer t0k");
        let url = fill(
            "https://api.example.org/v1?key={{secret:KEY}}&t={{secret:TOKEN}}",
            Context::Url,
            given,
        )
        .unwrap();
        assert_eq!(url, "https://api.example.org/v1?key=k%26y+1&t=t0k");
        assert_eq!(
            fill("{\"a\":\"{{secret:KEY}}\"}", Context::Text, given).unwrap(),
            "{\"a\":\"k&y 1\"}"
        );
    }

    #[test]
    fn text_that_only_looks_like_a_reference_is_left_alone() {
        for text in [
            "no reference",
            "{{secret:}}",
            "{{secret:lower}}",
            "{{secret:KEY",
            "{{secret:{{secret:",
            "{{ secret:KEY }}",
        ] {
            assert_eq!(fill(text, Context::Text, given).unwrap(), text);
        }
        // ... and a real one after a false start is still filled.
        assert_eq!(
            fill("{{secret:x {{secret:TOKEN}}", Context::Text, given).unwrap(),
            "{{secret:x t0k"
        );
    }

    #[test]
    fn a_secret_that_cannot_be_given_stops_the_fill() {
        assert_eq!(
            fill("a {{secret:KEY}} b {{secret:OTHER}}", Context::Text, given).unwrap_err(),
            "no OTHER"
        );
    }

    #[test]
    fn values_in_an_answer_become_references_again() {
        let answer = b"{\"echo\":\"t0k t0k\",\"key\":\"k&y 1\"}";
        let scrubbed = scrub(answer, &[("TOKEN", "t0k"), ("KEY", "k&y 1")]);
        assert_eq!(
            String::from_utf8(scrubbed).unwrap(),
            "{\"echo\":\"{{secret:TOKEN}} {{secret:TOKEN}}\",\"key\":\"{{secret:KEY}}\"}"
        );
        assert_eq!(scrub(b"nothing", &[("TOKEN", "")]), b"nothing");
    }

    #[test]
    fn secret_names_are_upper_case_words() {
        for good in ["KEY", "WEATHER_API_KEY", "K2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "key", "2KEY", "A-B", "A B", &"K".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
