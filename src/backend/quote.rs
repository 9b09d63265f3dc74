//! Upstream text made fit to quote back to a person: the credentials taken
//! out, folded onto one line, cut short. Error bodies in every shape the
//! API uses (`error`, `errors` as text, list or object, HTML pages from a
//! proxy) give up their message here.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::text::{one_line, shorten};

/// How much of an error answer is read to quote from it.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The longest quote taken from an API message.
pub const MAX_QUOTE_CHARS: usize = 300;
/// The longest excerpt taken from a body that is not a message.
pub const MAX_EXCERPT_CHARS: usize = 200;

/// Quotes upstream text without ever showing the strings it was given.
#[derive(Clone, Default)]
pub struct Quoter {
    /// Strings never to be quoted back (a secret, an encoded header value).
    redactions: Vec<String>,
}

impl std::fmt::Debug for Quoter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quoter({} redactions)", self.redactions.len())
    }
}

impl Quoter {
    /// A quoter that takes out each of `secrets` (empty ones are ignored),
    /// also as a URL or a JSON string would spell them.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut redactions = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let percent = utf8_percent_encode(&secret, NON_ALPHANUMERIC).to_string();
            let json = serde_json::to_string(&secret).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            redactions.extend([percent, json, secret]);
        }
        // Longest first, so that no shorter form leaves part of a longer one.
        redactions.sort_by_key(|r| std::cmp::Reverse(r.len()));
        redactions.dedup();
        Self { redactions }
    }

    /// How many bytes past a cut a secret can reach: read this much more
    /// than is quoted, so that every secret is whole when it is scrubbed.
    pub fn margin(&self) -> usize {
        self.redactions.first().map_or(0, String::len)
    }

    /// `text` with every redaction replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.redactions {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        out
    }

    /// Scrubbed, on one line, at most `max` characters. Scrubbed before
    /// anything else and again after folding, so that no transformation
    /// can bring a secret together or cut one in part.
    pub fn quote(&self, text: &str, max: usize) -> String {
        shorten(&self.scrub(&one_line(&self.scrub(text))), max)
    }

    /// A short excerpt of a body: the visible text of an HTML page, or the
    /// body itself. The whole body read is scrubbed before it is cut to
    /// [`MAX_ERROR_BODY_BYTES`] or stripped of tags, and again after.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let text = self.scrub(&String::from_utf8_lossy(body));
        let text = shorten(&text, MAX_ERROR_BODY_BYTES);
        let text = if looks_like_html(&text) {
            html_text(&text)
        } else {
            text
        };
        self.quote(&text, MAX_EXCERPT_CHARS)
    }

    /// The API's own words from an error body: its message fields when the
    /// body is JSON, a short excerpt otherwise; `None` for an empty body.
    pub fn body_message(&self, body: &[u8]) -> Option<String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => self
                .api_message(value.get("error"), value.get("errors"))
                .or_else(|| self.api_message(value.get("message"), value.get("description")))
                .or_else(|| Some(self.excerpt(body))),
            Err(_) => Some(self.excerpt(body)),
        }
    }

    /// The text of `error`/`errors` in any of the shapes the API uses.
    pub fn api_message(&self, error: Option<&Value>, errors: Option<&Value>) -> Option<String> {
        let mut parts = Vec::new();
        for value in [error, errors].into_iter().flatten() {
            collect_text(value, &mut parts);
        }
        parts.dedup();
        if parts.is_empty() {
            None
        } else {
            Some(self.quote(&parts.join("; "), MAX_QUOTE_CHARS))
        }
    }
}

/// A decoder's message without its position (`at line 1 column 9`).
pub fn strip_position(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
        Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_text(v, out)),
        _ => {}
    }
}

fn looks_like_html(text: &str) -> bool {
    let head = text.trim_start();
    head.starts_with('<')
        && head
            .get(..64)
            .unwrap_or(head)
            .to_ascii_lowercase()
            .contains("html")
        || head.to_ascii_lowercase().starts_with("<!doctype")
}

/// The visible text of an HTML page, title first.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    let mut skip_content = false;
    for ch in html.chars() {
        match ch {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if name == "script" || name == "style" {
                    skip_content = !tag.starts_with('/');
                }
                out.push(' ');
            }
            _ if in_tag => tag.push(ch),
            _ if !skip_content => out.push(ch),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoter() -> Quoter {
        Quoter::new(["a2lkOnRvcHNlY3JldA==".to_owned(), "topsecret".to_owned()])
    }

    #[test]
    fn api_messages_are_read_from_every_shape() {
        let q = quoter();
        let m = |body: &str| q.body_message(body.as_bytes());
        assert_eq!(
            m(r#"{"success": false, "error": "access key not found"}"#).as_deref(),
            Some("access key not found")
        );
        assert_eq!(
            m(r#"{"success": false, "errors": ["not authorized to read vouchers"]}"#).as_deref(),
            Some("not authorized to read vouchers")
        );
        assert_eq!(
            m(r#"{"errors": {"code": 404, "description": "pool does not exist"}}"#).as_deref(),
            Some("pool does not exist")
        );
        assert_eq!(
            m(r#"{"success": false, "errors": {"_global": ["bad skip"]}}"#).as_deref(),
            Some("bad skip")
        );
        assert_eq!(m("").as_deref(), None);
        assert_eq!(
            m("<html><head><title>502 Bad Gateway</title><style>p{}</style></head><body><h1>Bad   Gateway</h1></body></html>").as_deref(),
            Some("502 Bad Gateway Bad Gateway")
        );
    }

    #[test]
    fn secrets_are_scrubbed_across_cuts_tags_and_spellings() {
        let q = Quoter::new(["s3cr/t&x".to_owned()]);
        let at_the_cut = format!("{}s3cr/t&x tail", "y".repeat(MAX_ERROR_BODY_BYTES - 4));
        assert!(!q.excerpt(at_the_cut.as_bytes()).contains("s3cr"));
        let tagged = "<html><body>s3cr<b>/t&amp;</b>x s3cr/<i>t&x</i></body></html>";
        let quoted = q.excerpt(tagged.as_bytes());
        assert!(!quoted.contains("s3cr/t&x"), "{quoted}");
        assert_eq!(
            q.quote("https://x.example/?t=s3cr%2Ft%26x and \"s3cr/t&x\"", 200),
            "https://x.example/?t=[redacted] and \"[redacted]\""
        );
        assert!(q.margin() >= "s3cr%2Ft%26x".len());
    }

    #[test]
    fn quotes_are_short_and_scrubbed() {
        let q = quoter();
        let long = format!(
            r#"{{"error": "{} topsecret a2lkOnRvcHNlY3JldA=="}}"#,
            "x".repeat(1000)
        );
        let m = q.body_message(long.as_bytes()).unwrap();
        assert!(m.chars().count() <= MAX_QUOTE_CHARS + 1);
        let m = q
            .body_message(br#"{"error": "bad header Basic a2lkOnRvcHNlY3JldA== for topsecret"}"#)
            .unwrap();
        assert_eq!(m, "bad header Basic [redacted] for [redacted]");
    }
}
