//! Removing credentials from text the host shows: raw logs, error messages, health
//! reports. One place, so every caller redacts the same forms.
//!
//! A key rarely stays literal on its way back: an upstream quotes it inside a JSON
//! string (escaped), the transport puts it in a query string (percent-encoded), a proxy
//! echoes the URL. [`Redactor`] looks for every form the key can take in what the host
//! handles, and [`Redactor::redact_capped`] finds them *before* cutting a text to a
//! size, so a key across the cut cannot leave its first characters behind.

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Finds secrets, in each encoding the host's traffic carries them, and masks them.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every form of every secret, longest first (so the longest match wins a tie).
    forms: Vec<Vec<u8>>,
}

impl Redactor {
    /// A redactor for `secrets`; empty strings are ignored.
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Redactor {
        let mut forms: Vec<Vec<u8>> = secrets
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| !s.is_empty())
            .flat_map(encodings)
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// The longest form of any secret, in bytes: how far past a cut a secret that
    /// starts before it can reach.
    pub fn longest(&self) -> usize {
        self.forms.first().map_or(0, Vec::len)
    }

    /// Whether `text` holds a secret in any form.
    pub fn finds_in(&self, text: &str) -> bool {
        !self.matches(text.as_bytes()).is_empty()
    }

    /// `text` with every secret, in every form, replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        self.redact_capped(text.as_bytes(), usize::MAX).0
    }

    /// The first `cap` bytes of `bytes` as text, secrets masked, and whether anything
    /// was cut. Secrets are found in the whole of `bytes` first: one that starts before
    /// the cut is masked whole, and nothing at or after the cut is shown. Pass at least
    /// `cap + longest() - 1` bytes when there are more, so such a secret is complete.
    pub fn redact_capped(&self, bytes: &[u8], cap: usize) -> (String, bool) {
        let cut = bytes.len().min(cap);
        let mut out = Vec::with_capacity(cut);
        let mut at = 0;
        for (start, end) in self.matches(bytes) {
            if start >= cut {
                break;
            }
            out.extend_from_slice(&bytes[at..start]);
            out.extend_from_slice(MASK.as_bytes());
            at = end;
        }
        if at < cut {
            out.extend_from_slice(&bytes[at..cut]);
        }
        (
            String::from_utf8_lossy(&out).into_owned(),
            cut < bytes.len(),
        )
    }

    /// Where secrets are in `bytes`: sorted, overlapping matches merged.
    fn matches(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = Vec::new();
        for form in &self.forms {
            let mut from = 0;
            while let Some(offset) = find(&bytes[from..], form) {
                let start = from + offset;
                found.push((start, start + form.len()));
                from = start + 1;
            }
        }
        found.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (start, end) in found {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

/// Masks every form of `secrets` in `text` (a shorthand for one-off texts).
pub fn redact(text: &str, secrets: &[&str]) -> String {
    Redactor::new(secrets).redact(text)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The forms a secret takes in the host's traffic: literal; inside a JSON string
/// (escaped as `serde_json` writes it, with `/` escaped too, and with every non-ASCII
/// character as `\uXXXX`); percent-encoded as in a URL path or query (upper- and
/// lowercase hex), and form-encoded as the transport writes a key into a query string.
/// The host sends no Basic auth, so no base64 form is produced.
fn encodings(secret: &str) -> Vec<Vec<u8>> {
    // A string always serializes as `"..."`: the escaped text is between the quotes.
    let quoted = serde_json::to_string(secret).unwrap_or_default();
    let json = quoted[1..quoted.len() - 1].to_owned();
    let mut ascii_json = String::new();
    for c in json.chars() {
        if c.is_ascii() {
            ascii_json.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                ascii_json.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    let percent = |upper: bool| -> String {
        secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect()
    };
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    vec![
        secret.to_owned(),
        json.clone(),
        json.replace('/', "\\/"),
        ascii_json.clone(),
        upper_hex_escapes(&ascii_json),
        percent(true),
        percent(false),
        form,
    ]
    .into_iter()
    .filter(|f| !f.is_empty())
    .map(String::into_bytes)
    .collect()
}

/// `\uXXXX` escapes with uppercase hex digits, as some encoders write them.
fn upper_hex_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\\u") {
        let hex_end = (at + 6).min(rest.len());
        out.push_str(&rest[..at + 2]);
        out.push_str(&rest[at + 2..hex_end].to_ascii_uppercase());
        rest = &rest[hex_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key with characters that every encoding changes.
    const KEY: &str = "sk-test/a+b=c\"d\\e é";

    #[test]
    fn every_encoding_of_the_key_is_masked() {
        let r = Redactor::new(&[KEY]);
        let quoted = serde_json::to_string(&serde_json::json!({ "k": KEY })).unwrap();
        let ascii = r#"sk-test/a+b=c\"d\\e \u00e9"#;
        let slashed = r#"sk-test\/a+b=c\"d\\e é"#;
        let upper = "sk-test%2Fa%2Bb%3Dc%22d%5Ce%20%C3%A9";
        let lower = "sk-test%2fa%2bb%3dc%22d%5ce%20%c3%a9";
        let form = "sk-test%2Fa%2Bb%3Dc%22d%5Ce+%C3%A9";
        for text in [KEY, &quoted, ascii, slashed, upper, lower, form] {
            let shown = r.redact(&format!("before {text} after"));
            assert!(!shown.contains("sk-test"), "{text} -> {shown}");
            assert!(shown.starts_with("before ") && shown.ends_with(" after"));
        }
    }

    #[test]
    fn a_key_across_the_cut_is_masked_whole_and_nothing_past_the_cut_shows() {
        let r = Redactor::new(&["sk-0123456789"]);
        let text = b"0123456789sk-0123456789 tail";
        for cap in 11..=23 {
            let (shown, cut) = r.redact_capped(text, cap);
            assert_eq!(shown, "0123456789***", "cap {cap}");
            assert!(cut);
        }
        let (shown, _) = r.redact_capped(text, 10);
        assert_eq!(
            shown, "0123456789",
            "a key that starts at the cut is not shown at all"
        );
    }

    #[test]
    fn overlapping_secrets_are_masked_as_one() {
        let r = Redactor::new(&["abcdef", "defghi"]);
        assert_eq!(r.redact("xxabcdefghixx"), "xx***xx");
    }

    #[test]
    fn empty_secrets_redact_nothing() {
        assert!(Redactor::new(&[""]).is_empty());
        assert_eq!(redact("text", &[""]), "text");
    }
}
