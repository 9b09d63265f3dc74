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
/// The most of a text that is scrubbed to quote from it (a quote shows a
/// few hundred characters of its start).
const MAX_SCRUBBED: usize = 96 * 1024;

/// Quotes upstream text without ever showing the strings it was given.
#[derive(Clone, Default)]
pub struct Quoter {
    /// Strings never to be quoted back (a secret, an encoded header value),
    /// in the spellings found as they are (base64 forms).
    redactions: Vec<String>,
    /// The same strings as characters, found in any spelling of each
    /// character (percent, JSON, HTML entities) and across markup.
    spelled: Vec<Vec<char>>,
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
        use base64::engine::general_purpose::*;
        use base64::Engine;
        let mut redactions = Vec::new();
        let mut spelled = Vec::new();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            let percent = utf8_percent_encode(&secret, NON_ALPHANUMERIC).to_string();
            let json = serde_json::to_string(&secret).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                redactions.push(engine.encode(secret.as_bytes()));
            }
            spelled.push(secret.chars().collect());
            redactions.extend([percent, json, secret]);
        }
        // Longest first, so that no shorter form leaves part of a longer one.
        redactions.sort_by_key(|r| std::cmp::Reverse(r.len()));
        redactions.dedup();
        spelled.sort_by_key(|s: &Vec<char>| std::cmp::Reverse(s.len()));
        Self {
            redactions,
            spelled,
        }
    }

    /// How many bytes past a cut a secret can reach: read this much more
    /// than is quoted, so that every secret is whole when it is scrubbed
    /// (each character spelled as long as an entity can spell it).
    pub fn margin(&self) -> usize {
        let spelled = self.spelled.first().map_or(0, |s| s.len() * 12);
        self.redactions.first().map_or(0, String::len).max(spelled)
    }

    /// `text` with every redaction replaced by `[redacted]`: as given, in
    /// base64, and in any spelling of its characters (`%2F` or `%2f`,
    /// `\/`, `\u002f`, `&#47;`, `&amp;`), also where markup splits it.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.redactions {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[redacted]");
            }
        }
        for secret in &self.spelled {
            out = scrub_spelled(&out, secret);
        }
        out
    }

    /// Scrubbed, on one line, at most `max` characters. Scrubbed before
    /// anything else and again after folding, so that no transformation
    /// can bring a secret together or cut one in part.
    pub fn quote(&self, text: &str, max: usize) -> String {
        let text = self.bounded(text);
        shorten(&self.scrub(&one_line(&self.scrub(&text))), max)
    }

    /// [`Quoter::quote`] of a text that someone else may have cut at
    /// `cut_at` bytes (an HTTP library's cap on an error body): where it is
    /// that long, its last [`Quoter::margin`] bytes are dropped first, since
    /// a secret cut there would be too short to be recognized.
    pub fn quote_capped(&self, text: &str, cut_at: usize, max: usize) -> String {
        if text.len() + 8 < cut_at {
            return self.quote(text, max);
        }
        let keep = floor_char(text, text.len().saturating_sub(self.margin()));
        self.quote(&text[..keep], max)
    }

    /// The start of `text`, scrubbed, that any quote of it can show: at
    /// most [`MAX_SCRUBBED`] bytes, less the [`Quoter::margin`] at its end
    /// where a secret cut by the bound could begin. Nothing is cut from a
    /// shorter text; a longer one costs no more to scrub than this.
    fn bounded<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if text.len() <= MAX_SCRUBBED {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut scrubbed = self.scrub(&text[..floor_char(text, MAX_SCRUBBED)]);
        let keep = floor_char(&scrubbed, scrubbed.len().saturating_sub(self.margin()));
        scrubbed.truncate(keep);
        std::borrow::Cow::Owned(scrubbed)
    }

    /// A short excerpt of a body: the visible text of an HTML page, or the
    /// body itself. The whole body read is scrubbed before it is cut to
    /// [`MAX_ERROR_BODY_BYTES`] or stripped of tags, and again after.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let whole = String::from_utf8_lossy(&body[..body.len().min(MAX_SCRUBBED + 4)]);
        let text = self.scrub(&self.bounded(&whole));
        let mut text = shorten(&text, MAX_ERROR_BODY_BYTES);
        if looks_like_html(&text) {
            text = html_text(&text);
        }
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
        (!parts.is_empty()).then(|| self.quote(&parts.join("; "), MAX_QUOTE_CHARS))
    }
}

/// The largest character boundary of `text` at or below `at`.
fn floor_char(text: &str, at: usize) -> usize {
    (0..=at).rfind(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// `text` with every occurrence of `secret`, in any spelling of its
/// characters and split by markup, replaced by `[redacted]`.
fn scrub_spelled(text: &str, secret: &[char]) -> String {
    let Some(&first) = secret.first() else {
        return text.to_owned();
    };
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        let could_start =
            text[at..].starts_with(first) || matches!(bytes[at], b'%' | b'\\' | b'&' | b'+');
        if let Some(end) = could_start.then(|| spelled_at(text, at, secret)).flatten() {
            out.push_str(&text[copied..at]);
            out.push_str("[redacted]");
            (copied, at) = (end, end);
            continue;
        }
        at += text[at..].chars().next().map_or(1, char::len_utf8);
    }
    out.push_str(&text[copied..]);
    out
}

/// Where `secret` ends when it is spelled at `at` (markup allowed between
/// its characters).
fn spelled_at(text: &str, at: usize, secret: &[char]) -> Option<usize> {
    let mut pos = at;
    // The markup one attempt may skip, in all: a text made of tags costs
    // each start this much at most, never the rest of the text.
    let mut budget = MARKUP_BUDGET;
    for (k, &c) in secret.iter().enumerate() {
        pos = match char_at(text, pos, c) {
            Some(next) => next,
            None if k > 0 => char_at(text, skip_markup(text, pos, &mut budget)?, c)?,
            None => return None,
        };
    }
    Some(pos)
}

/// The most bytes of tags skipped between the characters of one secret.
const MARKUP_BUDGET: usize = 512;

/// Past any tags (`<...>`) that start at `pos`, within `budget` bytes;
/// `None` when the tags there are longer than what is left of it.
fn skip_markup(text: &str, mut pos: usize, budget: &mut usize) -> Option<usize> {
    while text.as_bytes().get(pos) == Some(&b'<') {
        let close = text.as_bytes()[pos..]
            .iter()
            .take(*budget)
            .position(|&b| b == b'>')?;
        *budget -= close + 1;
        // `>` is ASCII: the byte after it starts a character.
        pos += close + 1;
    }
    Some(pos)
}

/// Where `c` ends when it is spelled at `pos`: as itself, percent-encoded
/// (any case), as a JSON escape, as an HTML entity, or `+` for a space.
fn char_at(text: &str, pos: usize, c: char) -> Option<usize> {
    // An escape that spells `c` wins over `c` itself (`&amp;` for `&`).
    encoded_at(text, pos, c).or_else(|| text[pos..].starts_with(c).then(|| pos + c.len_utf8()))
}

/// [`char_at`] for the escaped spellings only.
fn encoded_at(text: &str, pos: usize, c: char) -> Option<usize> {
    let rest = &text[pos..];
    if c == ' ' && rest.starts_with('+') {
        return Some(pos + 1);
    }
    if rest.starts_with('%') {
        let mut buf = [0u8; 4];
        let mut p = pos;
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            let hex = text.get(p..p + 3)?;
            if !hex.starts_with('%') || u8::from_str_radix(&hex[1..], 16).ok()? != b {
                return None;
            }
            p += 3;
        }
        return Some(p);
    }
    if let Some(esc) = rest.strip_prefix('\\') {
        if let Some(hex) = esc.strip_prefix('u').and_then(|h| h.get(..4)) {
            return (u32::from_str_radix(hex, 16).ok()? == c as u32).then_some(pos + 6);
        }
        let escaped = esc.chars().next()?;
        let means = match escaped {
            '/' | '\\' | '"' => escaped,
            'n' => '\n',
            't' => '\t',
            _ => return None,
        };
        return (means == c).then_some(pos + 1 + escaped.len_utf8());
    }
    if rest.starts_with('&') {
        // `;` is ASCII: the entity's end is a character boundary.
        let end = rest.as_bytes().iter().take(12).position(|&b| b == b';')?;
        let name = &rest[1..end];
        let means = named_entity(name).or_else(|| {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        });
        return (means == Some(c)).then_some(pos + end + 1);
    }
    None
}

/// The character an HTML entity names, for the ASCII ones a secret may
/// hold (names compared without case).
fn named_entity(name: &str) -> Option<char> {
    // The n-th name names the n-th character.
    const NAMES: &str = "amp lt gt quot apos sol bsol plus equals colon semi percnt num quest excl \
        dollar ast midast lowbar underbar hyphen dash period comma commat lpar rpar lsqb lbrack rsqb \
        rbrack lcub lbrace rcub rbrace verbar vert tilde grave hat nbsp";
    const CHARS: &str = "&<>\"'/\\+=:;%#?!$**__--.,@()[[]]{{}}||~`^ ";
    let at = NAMES.split(' ').position(|n| n.eq_ignore_ascii_case(name));
    CHARS.chars().nth(at?)
}

/// A decoder's message without its position (`at line 1 column 9`).
pub fn strip_position(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
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
    let lower = head.get(..64).unwrap_or(head).to_ascii_lowercase();
    head.starts_with('<') && (lower.contains("html") || lower.starts_with("<!doctype"))
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
                let name = tag.trim_start_matches('/').to_ascii_lowercase();
                if matches!(name.split_whitespace().next(), Some("script" | "style")) {
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
    fn every_spelling_of_a_secret_is_scrubbed() {
        use base64::Engine;
        let secret = "Ab9/k+Q=x&y z\"w";
        let q = Quoter::new([secret.to_owned()]);
        let b64 = |e: &base64::engine::GeneralPurpose| e.encode(secret.as_bytes());
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let spellings = [
            secret.to_owned(),
            "Ab9%2Fk%2BQ%3Dx%26y%20z%22w".to_owned(),
            "Ab9%2fk%2bQ%3dx%26y%20z%22w".to_owned(),
            "Ab9%2Fk+Q=x&y+z\"w".to_owned(),
            "Ab9/k+Q=x&y%20z%22w".to_owned(),
            "Ab9\\/k+Q=x&y z\\\"w".to_owned(),
            "Ab9\\u002fk\\u002BQ=x\\u0026y z\\\"w".to_owned(),
            "Ab9&#47;k&#x2B;Q=x&amp;y z&quot;w".to_owned(),
            "Ab9/k+<b>Q=x</b>&amp;y <span class=\"s\">z</span>\"w".to_owned(),
            "A<i>b</i><i>9</i>/k+Q=x&y z\"w".to_owned(),
            b64(&STANDARD),
            b64(&URL_SAFE_NO_PAD),
        ];
        for spelled in spellings {
            let text = format!("before {spelled} after");
            let scrubbed = q.scrub(&text);
            assert_eq!(scrubbed, "before [redacted] after", "{spelled}");
            // And through every transform a quote makes.
            let quoted = q.excerpt(format!("<html><body><p>{text}</p></body></html>").as_bytes());
            for piece in ["Ab9", "k+Q", "x&y", "z\"w"] {
                assert!(!quoted.contains(piece), "{spelled}: {quoted}");
            }
        }
        // A text that only looks like it stays as it is.
        assert_eq!(q.scrub("Ab9/k+Q=x&y"), "Ab9/k+Q=x&y");
    }

    #[test]
    fn spellings_next_to_wide_characters_and_entities_in_any_case_are_scrubbed() {
        let q = Quoter::new(["ab/c+d".to_owned()]);
        for text in [
            "ab&#47;c+dé日本",
            "ab<b>/c+d</b>  é日本語",
            "ab&SOL;c&plus;d",
            "ab&sol;c&PLUS;dé",
        ] {
            assert_eq!(q.scrub(text).matches("[redacted]").count(), 1, "{text}");
            assert!(!q.scrub(text).contains("ab"), "{text}");
        }
    }

    #[test]
    fn a_text_made_of_tags_costs_each_start_a_bounded_walk() {
        // Every `e` starts an attempt at a secret that begins with `e`;
        // tags follow each. The whole body is still quoted, scrubbed, at
        // once: the walk is bounded per start, and the text scrubbed is
        // bounded too.
        let q = Quoter::new(["eyJsecret.token".to_owned()]);
        let body = format!("{}eyJsecret.token", "<e<>".repeat(1 << 20));
        let quoted = q.excerpt(body.as_bytes());
        assert!(!quoted.contains("eyJ"), "{quoted}");
        let short = format!("{}e<i>yJsecret.token", "<e<>".repeat(1000));
        assert!(q.scrub(&short).ends_with("[redacted]"));
    }

    #[test]
    fn a_secret_cut_by_someone_elses_cap_is_not_quoted_in_part() {
        let q = Quoter::new(["tok-0123456789abcdef".to_owned()]);
        // 4,080 bytes of white space, then the secret, cut at 4,096 bytes:
        // folding would bring the 16 bytes left of it to the front.
        let body = format!("{}tok-0123456789abcdef", " ".repeat(4080));
        let capped = &body[..4096];
        assert!(q.quote(capped, 300).contains("tok-0123"));
        let quoted = q.quote_capped(capped, 4096, 300);
        assert!(!quoted.contains("tok-"), "{quoted}");
        // A text shorter than the cap is quoted whole.
        assert_eq!(q.quote_capped("short text", 4096, 300), "short text");
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
