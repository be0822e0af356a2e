//! Removing a secret from a text, in every form it may take there (as it is, URL-encoded).

/// What a secret is replaced with in any text that is passed on.
pub(crate) const REDACTED: &str = "***";

/// JSON-escaped as Go's `json.Marshal` writes it (the engine is written in Go): HTML-safe,
/// with `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes (encoding/json `encodeState.string`).
fn go_json(text: &str) -> String {
    json(text)
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn json(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default().to_string()
}

/// The forms a secret takes on its way through the texts an engine or a tool may send
/// back: as written; JSON-escaped (once, and twice for JSON inside a JSON string), as
/// serde and as Go's HTML-safe `json.Marshal` write it; URL-encoded (a DSN's userinfo,
/// either hex case, `+` for a space); base64 (standard and URL-safe, padded or not).
/// Longest first, so a longer form is replaced whole.
pub fn forms(secret: &str) -> Vec<String> {
    let once = json(secret);
    let go_once = go_json(secret);
    let base64 = aws_smithy_types::base64::encode(secret);
    let url_safe = base64.replace('+', "-").replace('/', "_");
    let mut out = vec![
        secret.to_string(),
        json(&once),
        json(&go_once),
        go_json(&go_once),
        once,
        go_once,
        url_encoded(secret, false),
        url_encoded(secret, true),
        url_encoded(secret, false).replace("%20", "+"),
        base64.trim_end_matches('=').to_string(),
        url_safe.trim_end_matches('=').to_string(),
        base64,
        url_safe,
    ];
    out.retain(|f| !f.is_empty());
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out.dedup();
    out
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn url_encoded(text: &str, lower: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else if lower {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `text` with every form of `secret` replaced by `REDACTED`.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    forms(secret).iter().fold(text.to_string(), |t, form| t.replace(form.as_str(), REDACTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_redacted() {
        let secret = "p$ss\"w0rd\\ é/+ x";
        let planted = [
            format!("plain {secret} end"),
            format!(r#"json {{"password":{}}}"#, serde_json::to_string(secret).unwrap()),
            format!(
                "twice {}",
                serde_json::to_string(&serde_json::json!({"cause": format!("pw={secret}")}).to_string()).unwrap()
            ),
            "dsn postgres://dblab:p%24ss%22w0rd%5C%20%C3%A9%2F%2B%20x@clone:5432/app".to_string(),
            "lower postgres://dblab:p%24ss%22w0rd%5c%20%c3%a9%2f%2b%20x@clone".to_string(),
            "form password=p%24ss%22w0rd%5C+%C3%A9%2F%2B+x&user=dblab".to_string(),
            format!("basic {}", aws_smithy_types::base64::encode(secret)),
        ];
        for text in planted {
            let out = redact(&text, secret);
            assert!(out.contains(REDACTED), "nothing redacted in {text}");
            for form in forms(secret) {
                assert!(!out.contains(&form), "{form} left in {out}");
            }
            assert!(!out.contains("w0rd"), "{out}");
        }
        assert_eq!(redact("nothing here", secret), "nothing here");
        // The engine is written in Go: its JSON escapes <, > and & (and twice, in a cause).
        let secret = "a<b>&c\u{2028}d";
        let go = r"a\u003cb\u003e\u0026c\u2028d";
        for text in
            [format!(r#"{{"message":"pw={go}"}}"#), serde_json::to_string(&format!(r#"{{"m":"{go}"}}"#)).unwrap()]
        {
            let out = redact(&text, secret);
            assert!(out.contains(REDACTED) && !out.contains("u003c"), "{text} -> {out}");
        }
        assert_eq!(redact("keep", ""), "keep");
    }
}
