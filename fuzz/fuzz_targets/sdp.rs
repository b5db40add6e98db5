//! SDP as callers and carriers send it: read an offer, pick formats, rewrite it to the
//! switch's address. None may panic.
#![no_main]
use freecall::media::codec::Codec;
use freecall::media::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let local = "192.0.2.10:20000".parse().unwrap();
    if let Ok((_, formats)) = sdp::read_offer(data) {
        let _ = sdp::offer_for_trunk(&formats, &[Codec::Pcma, Codec::Pcmu, Codec::Opus]);
        if let Some(leg) = sdp::chosen(&formats) {
            let _ = sdp::caller_format(&formats, &leg);
            let _ = sdp::own_answer(local, &leg);
        }
        let _ = sdp::caller_playable(&formats);
    }
    let _ = sdp::formats(data);
    if let Ok((rewritten, _)) = sdp::rewrite(data, local) {
        // What the switch sends on is SDP it can read again.
        let _ = sdp::formats(&rewritten);
    }
});
