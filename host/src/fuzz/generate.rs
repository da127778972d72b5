//! Makes fuzzed upstream answers from a plugin's own sample answers: random bytes,
//! truncations, flipped and inserted bytes, lines cut in the middle of their JSON,
//! huge lines, absurd numbers and headers, and streams split at random points.

use super::{
    input::{Call, Input},
    rng::Rng,
};

/// The largest body the fuzzer makes: past the huge lines it inserts, and bounded so a
/// pass stays within its memory and time.
const MAX_BODY: usize = 2 << 20;

/// The sizes of a huge line: an upstream's line is capped by the host at
/// `stream_limits.max_line_bytes` (1 MiB by default) before a plugin sees it.
const HUGE: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];

/// What a huge line is made of: plain text, deep nesting, a long number, escapes,
/// multi-byte characters.
const HUGE_UNITS: &[&[u8]] = &[
    b"a",
    b"[",
    b"{\"a\":",
    b"9",
    b" ",
    b"\\u00e9",
    b"\xe2\x82\xac",
];

/// Bytes that mean something to JSON, SSE or UTF-8 decoders.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b":",
    b",",
    b"null",
    b"true",
    b"-",
    b"0",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"data:",
    b"event: error\n",
    b"event: ",
    b"id: ",
    b"retry: ",
    b": comment\n",
    b"[DONE]",
    b"\\u",
    b"\\ud800",
    b"\\u0000",
    b"\xf0\x9f",
    b"\xc3",
    b"\xff",
    b"\x00",
    b"{}",
    b"[]",
    b"\"\":",
    b"1e999",
    b"-1",
    b"18446744073709551616",
    b"{\"error\":",
    b"\"type\":",
    b"\"index\":",
    b"\"choices\":[",
    b"\"delta\":",
];

/// Numbers that overflow, underflow or are negative where counts are expected.
const NUMBERS: &[&[u8]] = &[
    b"18446744073709551616",
    b"-9223372036854775809",
    b"4294967296",
    b"-1",
    b"1e999",
    b"-1e999",
    b"0.5",
    b"1e-400",
    b"99999999999999999999999999999999",
];

/// `retry-after` values an upstream (or a man in the middle) could send.
const RETRY_AFTER: &[&str] = &[
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "NaN",
    "soon",
    "",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "99999999999999999999",
    "0.000001",
];

/// Statuses for `classify_error`.
const ERROR_STATUSES: [u16; 16] = [
    400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529, 599,
];

/// A plugin's sample answer, the material inputs are made from.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The call it was made for.
    pub call: Call,
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Makes input number `n` (the calls take turns, so each gets a third of the pass).
pub fn input(rng: &mut Rng, n: u64, samples: &[Sample]) -> Input {
    let call = [Call::ParseResponse, Call::Stream, Call::ClassifyError][(n % 3) as usize];
    // Mostly the call's own samples, sometimes another's: a stream given to
    // parse_response, an answer given to the decoder.
    let own: Vec<&Sample> = samples.iter().filter(|s| s.call == call).collect();
    let sample = match own.is_empty() || rng.one_in(5) {
        true => rng.pick(samples),
        false => *rng.pick(&own),
    };
    let mut body = sample.body.clone();
    for _ in 0..1 + rng.below(3) {
        mutate(rng, &mut body, samples);
        body.truncate(MAX_BODY);
    }
    let mut headers: Vec<(String, String)> = sample
        .headers
        .iter()
        .map(|(n, v)| (clean(n), clean(v)))
        .collect();
    let status = match call {
        Call::ClassifyError => {
            if rng.one_in(2) {
                let name = *rng.pick(&[
                    "retry-after",
                    "retry-after-ms",
                    "x-ratelimit-reset-requests",
                ]);
                headers.push((name.to_owned(), (*rng.pick(RETRY_AFTER)).to_owned()));
            }
            match sample.call {
                Call::ClassifyError if rng.one_in(2) => sample.status,
                _ => *rng.pick(&ERROR_STATUSES),
            }
        }
        _ => 200,
    };
    let pieces = match call {
        Call::Stream => split(rng, body.len()),
        _ => Vec::new(),
    };
    Input {
        call,
        status,
        headers,
        pieces,
        body,
    }
}

/// A header as it can arrive over HTTP: no line breaks.
fn clean(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// One random change to `body`.
fn mutate(rng: &mut Rng, body: &mut Vec<u8>, samples: &[Sample]) {
    let len = body.len();
    match rng.below(20) {
        // Random bytes, from any byte or from JSON's and SSE's alphabet.
        0 => {
            let alphabet: &[u8] = b"{}[]\":,.-+0123456789eEtrufalsn \\\n\r:data";
            *body = (0..rng.below(512))
                .map(|_| match rng.one_in(2) {
                    true => rng.next_u64() as u8,
                    false => *rng.pick(alphabet),
                })
                .collect();
        }
        // Cut short.
        1..=4 => body.truncate(rng.below(len + 1)),
        // Flipped bits.
        5..=6 => {
            for _ in 0..1 + rng.below(4) {
                if let Some(at) = index(rng, len) {
                    body[at] ^= 1 << rng.below(8);
                }
            }
        }
        // A token inserted.
        7..=9 => {
            let at = rng.below(len + 1);
            let token = *rng.pick(TOKENS);
            body.splice(at..at, token.iter().copied());
        }
        // A range deleted.
        10 => {
            let at = rng.below(len + 1);
            let end = (at + 1 + rng.below(64)).min(len);
            body.drain(at..end.max(at));
        }
        // A range repeated.
        11 => {
            let at = rng.below(len + 1);
            let end = (at + 1 + rng.below(256)).min(len);
            let copy = body[at..end.max(at)].to_vec();
            let to = rng.below(len + 1);
            body.splice(to..to, copy);
        }
        // A line cut in the middle of its JSON, followed by the next line.
        12..=14 => {
            if let Some(at) = index(rng, len) {
                let end = body[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |p| at + p);
                body.drain(at..end);
            }
        }
        // Spliced: the start of this body, the rest of another sample's.
        15 => {
            let other = &rng.pick(samples).body;
            let from = rng.below(other.len() + 1);
            body.truncate(rng.below(len + 1));
            body.extend_from_slice(&other[from..]);
        }
        // A number replaced by one that overflows or is negative.
        16..=17 => {
            let start = rng.below(len + 1);
            if let Some(p) = body[start..].iter().position(u8::is_ascii_digit) {
                let at = start + p;
                let end = body[at..]
                    .iter()
                    .position(|b| !b.is_ascii_digit())
                    .map_or(len, |q| at + q);
                body.splice(at..end, rng.pick(NUMBERS).iter().copied());
            }
        }
        // A huge line.
        18 => {
            let size = *rng.pick(&HUGE);
            let unit = *rng.pick(HUGE_UNITS);
            let mut line: Vec<u8> = match rng.one_in(2) {
                true => b"data: ".to_vec(),
                false => Vec::new(),
            };
            line.extend_from_slice(&unit.repeat(size / unit.len() + 1));
            let at = rng.below(len + 1);
            body.splice(at..at, line);
        }
        // A line repeated many times: many events.
        _ => {
            if let Some(at) = index(rng, len) {
                let start = body[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = body[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |p| at + p + 1);
                let line = body[start..end].to_vec();
                // Within the body's bound: a huge line is not repeated past it.
                let room = MAX_BODY.saturating_sub(len) / line.len().max(1);
                let times = (1 + rng.below(500)).min(room);
                let repeated: Vec<u8> = line.repeat(times);
                body.splice(end..end, repeated);
            }
        }
    }
}

fn index(rng: &mut Rng, len: usize) -> Option<usize> {
    (len > 0).then(|| rng.below(len))
}

/// Where a stream's body is cut into the pieces a network would deliver: whole, at
/// random points, or (when short) one byte at a time.
fn split(rng: &mut Rng, len: usize) -> Vec<usize> {
    if len == 0 {
        return vec![0];
    }
    match rng.below(8) {
        0 => vec![len],
        1 if len <= 4096 => vec![1; len],
        _ => {
            let mut cuts: Vec<usize> = (0..1 + rng.below(16)).map(|_| rng.below(len)).collect();
            cuts.push(len);
            cuts.sort_unstable();
            let mut at = 0;
            cuts.into_iter()
                .map(|cut| {
                    let piece = cut - at;
                    at = cut;
                    piece
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        let sample = |call, body: &[u8]| Sample {
            call,
            status: 200,
            headers: vec![],
            body: body.to_vec(),
        };
        vec![
            sample(Call::ParseResponse, br#"{"text":"hello","usage":{"in":3}}"#),
            sample(
                Call::Stream,
                b"data: {\"text\":\"hel\"}\n\ndata: {\"text\":\"lo\"}\n\ndata: [DONE]\n\n",
            ),
        ]
    }

    #[test]
    fn a_seed_makes_the_same_inputs() {
        let make = |seed| {
            let mut rng = Rng::new(seed);
            (0..300)
                .map(|n| input(&mut rng, n, &samples()))
                .collect::<Vec<_>>()
        };
        assert_eq!(make(9), make(9));
        assert_ne!(make(9), make(10));
    }

    #[test]
    fn stream_pieces_cover_the_body_and_bodies_stay_bounded() {
        let mut rng = Rng::new(1);
        for n in 0..600 {
            let input = input(&mut rng, n, &samples());
            assert!(input.body.len() <= MAX_BODY);
            match input.call {
                Call::Stream => assert_eq!(input.pieces.iter().sum::<usize>(), input.body.len()),
                Call::ClassifyError => assert!(input.status >= 400),
                Call::ParseResponse => assert_eq!(input.status, 200),
            }
        }
    }

    #[test]
    fn the_fuzzer_makes_truncated_bodies_and_lines_cut_mid_json() {
        let mut rng = Rng::new(3);
        let inputs: Vec<Input> = (0..600).map(|n| input(&mut rng, n, &samples())).collect();
        let not_json = inputs
            .iter()
            .filter(|i| i.call == Call::ParseResponse)
            .filter(|i| serde_json::from_slice::<serde_json::Value>(&i.body).is_err())
            .count();
        assert!(not_json > 100, "only {not_json} of 200 answers were broken");
        let cut_lines = inputs
            .iter()
            .filter(|i| i.call == Call::Stream)
            .flat_map(|i| i.body.split(|&b| b == b'\n'))
            .filter(|line| line.starts_with(b"data: {"))
            .filter(|line| serde_json::from_slice::<serde_json::Value>(&line[6..]).is_err())
            .count();
        assert!(
            cut_lines > 20,
            "only {cut_lines} data lines were cut mid-JSON"
        );
    }
}
