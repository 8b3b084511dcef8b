//! Credentials never reach messages or logs.

/// A URL or address for messages: `scheme://user:password@host` loses its
/// credentials (`scheme://***@host`); anything else is returned as it is.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn credentials_never_reach_messages() {
        assert_eq!(redact_url("redis://user:s3cret@10.0.0.1:6379/0"), "redis://***@10.0.0.1:6379/0");
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("localhost:6379"), "localhost:6379");
        assert_eq!(redact_url("redis://10.0.0.1:6379"), "redis://10.0.0.1:6379");
    }
}

/// Longest piece of caller input echoed in a message, in characters.
pub const MAX_ECHO_CHARS: usize = 200;

/// `input` for a message: at most [`MAX_ECHO_CHARS`] characters, so an
/// error never echoes a huge name or key back (a client would see its
/// metadata limit instead of the error).
pub fn clip(input: &str) -> std::borrow::Cow<'_, str> {
    match input.char_indices().nth(MAX_ECHO_CHARS) {
        None => std::borrow::Cow::Borrowed(input),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}… ({} bytes)", &input[..at], input.len())),
    }
}

#[cfg(test)]
mod clip_tests {
    use super::*;

    #[test]
    fn long_input_is_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "é".repeat(15_000);
        let shown = clip(&long);
        assert!(shown.chars().count() < MAX_ECHO_CHARS + 20, "{}", shown.len());
        assert!(shown.ends_with("(30000 bytes)"), "{shown}");
    }
}
