//! The `id` of a JSON-RPC line that is not valid JSON, read as far as it
//! can be: a line with a number like `1e400`, a lone surrogate or a broken
//! byte somewhere in its params still names the request it belongs to, and
//! that request still deserves an answer with its id. The walk builds
//! nothing: it skips strings (honouring escapes) and nested brackets.

/// The raw JSON text of the first top-level `"id"` member's value, if the
/// line is an object whose `id` is a string or a number.
pub fn raw_id(line: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    members(line, |key, rest| {
        if key == b"id" {
            found = value_of(rest);
        }
        key != b"id"
    });
    found.filter(|value| matches!(value.first(), Some(b'"' | b'-' | b'0'..=b'9')))
}

/// Walks the members of the top-level object of `line`, without building
/// anything and whatever their nesting, handing each key (its raw text,
/// without quotes) and the line from its value on (read it with
/// [`value_of`]) to `each`, which returns whether to go on; a value is
/// skipped only to reach the next key, so a walk that stops at a key never
/// reads its value. Stops at the first thing that is not JSON.
pub fn members<'a>(line: &'a [u8], mut each: impl FnMut(&'a [u8], &'a [u8]) -> bool) {
    let mut i = skip_space(line, 0);
    if line.get(i) != Some(&b'{') {
        return;
    }
    i += 1;
    loop {
        i = skip_space(line, i);
        if line.get(i) == Some(&b',') {
            i += 1;
            continue;
        }
        if line.get(i) != Some(&b'"') {
            return;
        }
        let Some(key_end) = string_end(line, i) else {
            return;
        };
        let key = &line[i + 1..key_end - 1];
        i = skip_space(line, key_end);
        if line.get(i) != Some(&b':') {
            return;
        }
        i = skip_space(line, i + 1);
        if !each(key, &line[i..]) {
            return;
        }
        let Some(end) = value_end(line, i) else {
            return;
        };
        i = end;
    }
}

/// The raw text of the value that `rest` starts with.
pub fn value_of(rest: &[u8]) -> Option<&[u8]> {
    value_end(rest, 0).map(|end| &rest[..end])
}

fn skip_space(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

/// The index just past the string that starts at `start` (a `"`).
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        match line.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The index just past the value that starts at `start`.
fn value_end(line: &[u8], start: usize) -> Option<usize> {
    match line.get(start)? {
        b'"' => string_end(line, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match line.get(i)? {
                    b'"' => {
                        i = string_end(line, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = line[start..]
                .iter()
                .take_while(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                .count();
            (len > 0).then_some(start + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raw_id;

    fn id(line: &str) -> Option<String> {
        raw_id(line.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn finds_the_id_wherever_it_stands() {
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":7,"method":"x"}"#).as_deref(),
            Some("7")
        );
        assert_eq!(
            id(r#"{"method":"x","params":{"id":1,"a":[1,{"id":2}]},"id":"a\"b"}"#).as_deref(),
            Some(r#""a\"b""#)
        );
        assert_eq!(id(r#" { "id" : -3e2 , "x": 1}"#).as_deref(), Some("-3e2"));
        assert_eq!(
            id(r#"{"id":1180591620717411303424,"method":"x"}"#).as_deref(),
            Some("1180591620717411303424")
        );
    }

    #[test]
    fn reads_ids_of_lines_that_are_not_valid_json() {
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"n":1e400}}"#).as_deref(),
            Some("5")
        );
        assert_eq!(
            id(r#"{"jsonrpc":"2.0","id":6,"params":{"s":"\ud800"},"method":"m"}"#).as_deref(),
            Some("6")
        );
        let mut bytes = br#"{"id":8,"params":{"s":""#.to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(br#""}}"#);
        assert_eq!(raw_id(&bytes), Some(&b"8"[..]));
        assert_eq!(id(r#"{"params":{"s":"x"},"id":9"#).as_deref(), Some("9"));
    }

    #[test]
    fn no_id_where_there_is_none_or_it_is_not_a_string_or_number() {
        for line in [
            "",
            "not json",
            "[1,2]",
            r#"{"method":"x"}"#,
            r#"{"id":null}"#,
            r#"{"id":{"a":1}}"#,
            r#"{"id":true}"#,
            r#"{"params":{"id":1}}"#,
            r#"{"a":"unterminated"#,
        ] {
            assert_eq!(id(line), None, "{line}");
        }
    }
}
