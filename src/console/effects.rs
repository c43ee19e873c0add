//! Writes what the terminal must do besides drawing (bell, window title, clipboard) as the
//! escape sequences terminals and tmux understand.

use std::io::Write;

use super::state::Effect;

/// Writes the effects to the terminal, in order.
pub fn perform(out: &mut impl Write, effects: Vec<Effect>) -> std::io::Result<()> {
    for effect in effects {
        match effect {
            Effect::Bell => out.write_all(b"\x07")?,
            Effect::Title(title) => crossterm::queue!(out, crossterm::terminal::SetTitle(title))?,
            Effect::Copy(text) => out.write_all(osc52(&text).as_bytes())?,
        }
    }
    out.flush()
}

/// OSC 52 "set the clipboard": the terminal (or tmux, with `set-clipboard on`) takes the
/// text even over SSH, where the console cannot reach the operator's machine otherwise.
pub fn osc52(text: &str) -> String {
    format!("\x1b]52;c;{}\x07", base64(text.as_bytes()))
}

/// Standard base64 with padding (RFC 4648), all OSC 52 needs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn effects_are_written_as_escape_sequences() {
        let mut out = Vec::new();
        perform(&mut out, vec![Effect::Bell, Effect::Copy("fault 7".into())]).unwrap();
        assert_eq!(out, b"\x07\x1b]52;c;ZmF1bHQgNw==\x07");
    }
}
