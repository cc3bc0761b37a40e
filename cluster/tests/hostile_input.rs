//! What a stranger can send to the parsers of this crate that face the network, as random
//! input (property tests, run in every CI build): signatures of internal calls, path segments
//! of public URLs, and configuration text. Each answers with a refusal, never a panic, and a
//! genuine signature changed in any one character is refused.

use cluster::auth::{Secret, SignedParts, SIGNATURE_VERSION};
use proptest::prelude::*;

fn parts(body: &[u8]) -> SignedParts<'_> {
    SignedParts {
        method: "PATCH",
        path_and_query: "/internal/uploads/0123456789abcdef",
        user: "ada",
        target: "node-a",
        body,
        upload_offset: "0",
        content_type: "",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_signature_header_is_refused_not_a_panic(header in "\\PC{0,200}", dots in "[0-9a-f.]{0,120}") {
        let secret = Secret::from_bytes(b"a cluster secret of the test");
        let now = 1_800_000_000;
        for h in [header.as_str(), dots.as_str(), &format!("{SIGNATURE_VERSION}.{now}.{dots}")] {
            prop_assert!(secret.verify_request(Some(h), &parts(b"bytes"), now).is_err(), "{h}");
        }
    }

    #[test]
    fn a_genuine_signature_changed_anywhere_is_refused(at in 0usize..200, by in "[ -~]") {
        let secret = Secret::from_bytes(b"a cluster secret of the test");
        let now = 1_800_000_000;
        let good = secret.sign_request(&parts(b"bytes"), now);
        prop_assert!(secret.verify_request(Some(&good), &parts(b"bytes"), now).is_ok());
        let at = at % good.len();
        let mut bad = good.clone();
        bad.replace_range(at..at + 1, &by);
        // The tag is hex, read in either case: the same bytes, the same signature.
        let same_tag = at > good.rfind('.').unwrap() && bad.eq_ignore_ascii_case(&good);
        if bad != good && !same_tag {
            prop_assert!(secret.verify_request(Some(&bad), &parts(b"bytes"), now).is_err(), "{bad}");
        }
        // The same header over another body is refused.
        prop_assert!(secret.verify_request(Some(&good), &parts(b"other"), now).is_err());
    }

    #[test]
    fn any_path_segment_decodes_to_a_plain_id_or_nothing(raw in "(\\PC|%[0-9a-fA-F]{2}|%){0,80}") {
        if let Some(id) = cluster::image_id_in_path(&raw) {
            prop_assert!(cluster::valid_image_id(&id));
            prop_assert!(!id.contains('/') && !id.contains('%'));
        }
        if let Some(s) = cluster::decode_path_segment(&raw) {
            prop_assert!(!s.contains('/'));
        }
    }

    #[test]
    fn any_configuration_text_is_an_error_or_a_checked_cluster(text in "\\PC{0,400}") {
        let _ = cluster::ClusterConfig::parse(&text);
    }
}
