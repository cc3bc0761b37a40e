//! What a search word matches, in one place for the index and the check of a row: a word of
//! a search matches where a word of the text begins with it, ignoring case ("sea" finds
//! "Seahorse" and "the sea", not "Chelsea"), as a search box does. Words are the runs of
//! letters and digits of the text in lower case.

/// The text in lower case. ASCII, the common case, is lowered byte by byte.
pub fn lower(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) || !text.is_ascii() {
        std::borrow::Cow::Owned(if text.is_ascii() {
            text.to_ascii_lowercase()
        } else {
            text.to_lowercase()
        })
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The words of a text already in lower case: its runs of letters and digits.
pub fn words(lower: &str) -> impl Iterator<Item = &str> {
    lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The words of a text already in lower case, each also with the sign that follows it at once
/// when there is one (not a space): "no. 5" gives "no", "no." and "5". A search word that is
/// a word and one sign ("no.", "c.") is found in the index as it is, without reading rows.
pub fn words_and_signs(lower: &str) -> impl Iterator<Item = &str> {
    words(lower).flat_map(move |w| {
        let end = w.as_ptr() as usize - lower.as_ptr() as usize + w.len();
        let signed = lower[end..]
            .chars()
            .next()
            .filter(|c| !c.is_whitespace())
            .map(|c| &lower[end - w.len()..end + c.len_utf8()]);
        std::iter::once(w).chain(signed)
    })
}

/// Whether a search word is one word and one sign after it ("no.", "c."): the words of the
/// text that [`words_and_signs`] gives answer it exactly.
pub fn is_word_and_sign(word: &str) -> bool {
    let mut them = words(word);
    match (them.next(), them.next()) {
        (Some(first), None) => word.starts_with(first) && word[first.len()..].chars().count() == 1,
        _ => false,
    }
}

/// Whether `word` (in lower case) is found in `text` at the start of one of its words,
/// ignoring case. A word that begins with a sign ("(1831") may be found anywhere.
pub fn begins_a_word(text: &str, word: &str) -> bool {
    let Some(first) = word.chars().next() else {
        return true;
    };
    let anywhere = !first.is_alphanumeric();
    if text.is_ascii() && word.is_ascii() {
        // Byte by byte without a copy: in ASCII text every character is one byte.
        let (text, word) = (text.as_bytes(), word.as_bytes());
        return text.len() >= word.len()
            && (0..=text.len() - word.len()).any(|at| {
                (anywhere || at == 0 || !text[at - 1].is_ascii_alphanumeric())
                    && text[at..at + word.len()].eq_ignore_ascii_case(word)
            });
    }
    let text = lower(text);
    text.match_indices(word).any(|(at, _)| {
        anywhere
            || text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_word_matches_where_a_word_of_the_text_begins() {
        for (text, word) in [
            ("The Great Wave", "great"),
            ("Seahorse valley", "sea"),
            ("by the sea", "sea"),
            ("Mt.Fuji", "fuji"),
            ("Katsushika Hokusai", "hoku"),
            ("c. 1831", "c."),
            ("c. 1831", "1831"),
            ("1503–1506", "1503–1506"),
            ("(1831)", "(18"),
            ("Ηλιοβασίλεμα ΣΤΗ ΘΆΛΑΣΣΑ", "θάλασσα"),
        ] {
            assert!(begins_a_word(text, word), "{word} in {text}");
        }
        for (text, word) in [
            ("Chelsea", "sea"),
            ("Hokusai", "kusai"),
            ("The Great Wave", "tsunami"),
            ("1831", "831"),
        ] {
            assert!(!begins_a_word(text, word), "{word} in {text}");
        }
    }

    #[test]
    fn a_word_and_the_sign_after_it_are_a_word_too() {
        let all: Vec<&str> = words_and_signs("no. 5 c.1831 (x) a–b end").collect();
        assert_eq!(
            all,
            ["no", "no.", "5", "c", "c.", "1831", "x", "x)", "a", "a–", "b", "end"]
        );
        for (word, is) in [
            ("no.", true),
            ("c.", true),
            ("a–", true),
            ("no", false),
            ("no..", false),
            ("c.1", false),
            (".no", false),
            (":", false),
        ] {
            assert_eq!(is_word_and_sign(word), is, "{word}");
        }
    }

    proptest! {
        /// A search word of one word and one sign matches exactly the texts that have it
        /// among their words and signs: the index answers it without reading the row.
        #[test]
        fn a_word_and_its_sign_match_where_the_text_has_them(
            text in "[a-zA-Z é.:1-]{0,16}",
            word in "[a-zé1]{1,3}[.:-]",
        ) {
            let lowered = lower(&text);
            let has = words_and_signs(&lowered).any(|w| w == word);
            prop_assert!(is_word_and_sign(&word));
            prop_assert_eq!(begins_a_word(&text, &word), has, "{} in {}", word, text);
        }

        /// A match is always at a place where one of the text's words begins with each
        /// word of the search word: what lets the index answer for the check.
        #[test]
        fn every_match_is_seen_by_the_words_of_the_text(
            text in "[a-zA-Zé É.1-]{0,16}",
            word in "[a-zé.1-]{1,4}",
        ) {
            if begins_a_word(&text, &word) {
                let lowered = lower(&text);
                let have: Vec<&str> = words(&lowered).collect();
                for w in words(&word) {
                    prop_assert!(have.iter().any(|h| h.starts_with(w)), "{w} of {word} in {text}");
                }
            }
        }

        /// ASCII takes the short way; it answers as the long way does.
        #[test]
        fn ascii_answers_as_unicode_does(text in "[a-zA-Z .1-]{0,16}", word in "[a-z.1-]{1,3}") {
            let long = {
                let t = text.to_lowercase();
                let anywhere = !word.starts_with(|c: char| c.is_alphanumeric());
                t.match_indices(&word).any(|(at, _)| {
                    anywhere || t[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric())
                })
            };
            prop_assert_eq!(begins_a_word(&text, &word), long);
        }
    }
}
