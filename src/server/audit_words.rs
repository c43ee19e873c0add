//! A field's value as people read it in the audit trail, from its `Debug` text: `Some(3)` is
//! `3`, `None` is `none`, a timestamp is RFC 3339, a position is `lat, lon`, an enum variant
//! is its contract name (`ACKNOWLEDGED`). Text stays quoted, so an empty or odd value is
//! still seen exactly.

use chrono::{DateTime, SecondsFormat};

/// The value of one field, in words.
pub fn words(debug: &str) -> String {
    let tokens = tokenize(debug);
    let mut at = 0;
    let value = value(&tokens, &mut at);
    if at == tokens.len() {
        value
    } else {
        // Something this reader does not know: the text as it was.
        debug.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Punct(char),
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut quoted = String::from('"');
            chars.next();
            while let Some(c) = chars.next() {
                quoted.push(c);
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        quoted.push(escaped);
                    }
                } else if c == '"' {
                    break;
                }
            }
            tokens.push(Token::Text(quoted));
        } else if "(){}[]:,".contains(c) {
            tokens.push(Token::Punct(c));
            chars.next();
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || "(){}[]:,\"".contains(c) {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(Token::Word(word));
        }
    }
    tokens
}

fn punct(tokens: &[Token], at: usize, c: char) -> bool {
    tokens.get(at) == Some(&Token::Punct(c))
}

fn value(tokens: &[Token], at: &mut usize) -> String {
    match tokens.get(*at).cloned() {
        Some(Token::Text(text)) => {
            *at += 1;
            text
        }
        Some(Token::Punct('[')) => {
            *at += 1;
            let items = list(tokens, at, ']');
            format!("[{}]", items.join(", "))
        }
        Some(Token::Word(word)) => {
            *at += 1;
            if punct(tokens, *at, '(') {
                *at += 1;
                let inner = list(tokens, at, ')');
                return inner.join(", ");
            }
            if punct(tokens, *at, '{') {
                *at += 1;
                return record(&word, tokens, at);
            }
            bare(&word)
        }
        _ => {
            *at = tokens.len() + 1;
            String::new()
        }
    }
}

/// Values separated by commas up to `close` (a trailing comma allowed).
fn list(tokens: &[Token], at: &mut usize, close: char) -> Vec<String> {
    let mut items = Vec::new();
    while *at < tokens.len() && !punct(tokens, *at, close) {
        items.push(value(tokens, at));
        if punct(tokens, *at, ',') {
            *at += 1;
        }
    }
    *at += 1;
    items
}

/// `Name { field: value, ... }`: timestamps and positions read as such, anything else as
/// "field value" pairs.
fn record(name: &str, tokens: &[Token], at: &mut usize) -> String {
    let mut fields: Vec<(String, String)> = Vec::new();
    while *at < tokens.len() && !punct(tokens, *at, '}') {
        let Some(Token::Word(field)) = tokens.get(*at).cloned() else {
            *at = tokens.len() + 1;
            return String::new();
        };
        *at += 1;
        if !punct(tokens, *at, ':') {
            *at = tokens.len() + 1;
            return String::new();
        }
        *at += 1;
        let value = value(tokens, at);
        fields.push((field, value));
        if punct(tokens, *at, ',') {
            *at += 1;
        }
    }
    *at += 1;
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    match name {
        "Timestamp" => {
            let seconds = get("seconds").and_then(|s| s.parse::<i64>().ok());
            match seconds.and_then(|s| DateTime::from_timestamp(s, 0)) {
                Some(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true),
                None => "an invalid instant".to_owned(),
            }
        }
        "GeoPoint" => format!(
            "{}, {}",
            get("lat").unwrap_or("?"),
            get("lon").unwrap_or("?")
        ),
        _ => {
            let pairs: Vec<String> = fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!("({})", pairs.join(", "))
        }
    }
}

/// A bare word: a number, a bool, `None`, or an enum variant (`LampFailure` becomes
/// `LAMP_FAILURE`, as the contract spells it).
fn bare(word: &str) -> String {
    match word {
        "None" => "none".to_owned(),
        "true" | "false" => word.to_owned(),
        w if w.starts_with(|c: char| c.is_ascii_uppercase())
            && w.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            let mut out = String::new();
            for (i, c) in w.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        w => w.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shapes_read_as_words() {
        assert_eq!(words("Some( 3 )"), "3");
        assert_eq!(words("None"), "none");
        assert_eq!(words("Acknowledged"), "ACKNOWLEDGED");
        assert_eq!(words("LampFailure"), "LAMP_FAILURE");
        assert_eq!(words("\"crew-north\""), "\"crew-north\"");
        assert_eq!(words("\"\""), "\"\"");
        assert_eq!(words("\"a, \\\"b\\\" (c)\""), "\"a, \\\"b\\\" (c)\"");
        assert_eq!(
            words("Some( Timestamp { seconds: 1764547200, nanos: 0 } )"),
            "2025-12-01T00:00:00Z"
        );
        assert_eq!(
            words("Some( GeoPoint { lat: 51.4966, lon: -0.1449 } )"),
            "51.4966, -0.1449"
        );
        assert_eq!(words("[ 1, 2, ]"), "[1, 2]");
        assert_eq!(
            words(
                "[ TariffBand { name: \"night\", starts_at: \"00:30\", price_millipence_per_kwh: 12500 } ]"
            ),
            "[(name \"night\", starts_at \"00:30\", price_millipence_per_kwh 12500)]"
        );
        assert_eq!(words("-12.5"), "-12.5");
        assert_eq!(words("true"), "true");
    }

    #[test]
    fn what_it_cannot_read_stays_as_it_was() {
        assert_eq!(words("Some( 3"), "Some( 3");
        assert_eq!(words("a b"), "a b");
    }
}
