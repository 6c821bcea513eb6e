//! Input limits, in one place, and the pure checks that enforce them.
//!
//! Every check returns `Err` with a sentence that names the field and what is
//! wrong with it, e.g. "agent name is 300 bytes; the limit is 64". Sizes are
//! UTF-8 bytes (what `str::len` counts), not characters.

/// Agent names, roles and statuses.
pub const MAX_LABEL_BYTES: usize = 64;
/// Conversation and document titles.
pub const MAX_TITLE_BYTES: usize = 256;
/// Message content, including everything appended while streaming.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Document content.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Opaque msgpack payloads: agent state and document metadata.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The roles a message may have.
pub const MESSAGE_ROLES: [&str; 4] = ["user", "assistant", "system", "tool"];

/// A short label (agent name, role or status): non-blank, at most [`MAX_LABEL_BYTES`].
pub fn label(field: &str, value: &str) -> Result<(), String> {
    non_blank(field, value)?;
    size(field, value.len(), MAX_LABEL_BYTES)
}

/// A title: non-blank, at most [`MAX_TITLE_BYTES`].
pub fn title(field: &str, value: &str) -> Result<(), String> {
    non_blank(field, value)?;
    size(field, value.len(), MAX_TITLE_BYTES)
}

/// Any sized value (text or payload): at most `limit` bytes.
pub fn size(field: &str, len: usize, limit: usize) -> Result<(), String> {
    if len > limit {
        return Err(format!("{field} is {len} bytes; the limit is {limit}"));
    }
    Ok(())
}

/// A message role: one of [`MESSAGE_ROLES`].
pub fn message_role(role: &str) -> Result<(), String> {
    if MESSAGE_ROLES.contains(&role) {
        return Ok(());
    }
    Err(format!(
        "message role '{role}' is not one of {}",
        MESSAGE_ROLES.join(", ")
    ))
}

/// `text` cut to at most `limit` bytes, on a character boundary.
pub fn truncate(text: &str, limit: usize) -> String {
    let mut end = text.len().min(limit);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn non_blank(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.trim().is_empty() {
        return Err(format!("{field} must not be only whitespace"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_must_be_non_blank_and_short() {
        assert_eq!(label("agent name", "planner"), Ok(()));
        assert_eq!(
            label("agent name", ""),
            Err("agent name must not be empty".into())
        );
        assert_eq!(
            label("agent name", " \t\n"),
            Err("agent name must not be only whitespace".into())
        );
        assert_eq!(label("agent role", &"r".repeat(MAX_LABEL_BYTES)), Ok(()));
        assert_eq!(
            label("agent name", &"n".repeat(300)),
            Err("agent name is 300 bytes; the limit is 64".into())
        );
    }

    #[test]
    fn limits_count_bytes_not_characters() {
        // 22 four-byte characters = 88 bytes: over the limit though only 22 chars.
        let emoji = "🪐".repeat(22);
        assert_eq!(
            label("agent status", &emoji),
            Err("agent status is 88 bytes; the limit is 64".into())
        );
    }

    #[test]
    fn titles_allow_256_bytes() {
        assert_eq!(
            title("document title", &"t".repeat(MAX_TITLE_BYTES)),
            Ok(())
        );
        assert_eq!(
            title("document title", &"t".repeat(MAX_TITLE_BYTES + 1)),
            Err("document title is 257 bytes; the limit is 256".into())
        );
        assert!(title("conversation title", "").is_err());
    }

    #[test]
    fn size_is_inclusive() {
        assert_eq!(
            size("agent state", MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES),
            Ok(())
        );
        assert_eq!(
            size("message content", MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES),
            Err("message content is 65537 bytes; the limit is 65536".into())
        );
        assert_eq!(size("message content", 0, MAX_MESSAGE_BYTES), Ok(()));
    }

    #[test]
    fn message_roles_are_a_closed_set() {
        for role in MESSAGE_ROLES {
            assert_eq!(message_role(role), Ok(()));
        }
        assert_eq!(
            message_role("bot"),
            Err("message role 'bot' is not one of user, assistant, system, tool".into())
        );
        assert!(message_role("User").is_err());
        assert!(message_role("").is_err());
    }

    #[test]
    fn truncate_keeps_whole_characters() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("abcdef", 3), "abc");
        // "é" is two bytes: cutting at 2 would split it.
        assert_eq!(truncate("aé", 2), "a");
    }
}
