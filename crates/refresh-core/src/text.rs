//! Small text helpers shared by the history, the notifications and the errors.

/// At most `limit` characters of `text`, ending in "..." when it was cut.
pub(crate) fn shorten(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}
