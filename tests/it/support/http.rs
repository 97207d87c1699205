//! What the fake destinations share about HTTP requests.

use std::io::Read;

/// The body of a request as sent before compression: gunzipped when it says
/// `Content-Encoding: gzip`, as is without the header. Fails on any other
/// encoding, or a gzip header over a body that is not gzip.
pub fn decoded_body(request: &wiremock::Request) -> Vec<u8> {
    let encoding = request
        .headers
        .get("content-encoding")
        .map(|v| v.to_str().unwrap());
    match encoding {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&request.body[..])
                .read_to_end(&mut out)
                .expect("Content-Encoding: gzip but the body is not gzip");
            out
        }
        None => request.body.clone(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
}
