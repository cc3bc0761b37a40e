//! An image's metadata as the table keeps it: every field in one allocation. At a million
//! images the fields as separate strings were much of a frontend's memory.

use cluster::ImageMeta;

use super::words::begins_a_word;

/// Title, artist, date, description, rights, owner and then each keyword, each written as
/// its length in bytes, a colon and the text (so any text fits, colons and newlines too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMeta(Box<str>);

/// The fields before the keywords, in their order.
const FIXED: usize = 6;

impl PackedMeta {
    pub fn pack(m: &ImageMeta) -> PackedMeta {
        let fixed = [
            &m.title,
            &m.artist,
            &m.date,
            &m.description,
            &m.rights,
            &m.owner,
        ];
        let mut text = String::with_capacity(
            fixed.iter().map(|f| f.len() + 4).sum::<usize>()
                + m.keywords.iter().map(|k| k.len() + 4).sum::<usize>(),
        );
        for field in fixed.into_iter().chain(&m.keywords) {
            use std::fmt::Write;
            let _ = write!(text, "{}:{field}", field.len()); // writing to a String never fails
        }
        PackedMeta(text.into_boxed_str())
    }

    /// Every field, in the order [`PackedMeta`] says.
    fn fields(&self) -> impl Iterator<Item = &str> + '_ {
        let mut rest: &str = &self.0;
        std::iter::from_fn(move || {
            let (length, after) = rest.split_once(':')?;
            let length: usize = length.parse().ok()?;
            let (field, next) = after.split_at(length);
            rest = next;
            Some(field)
        })
    }

    pub fn title(&self) -> &str {
        self.fields().next().unwrap_or_default()
    }

    pub fn artist(&self) -> &str {
        self.fields().nth(1).unwrap_or_default()
    }

    pub fn unpack(&self) -> ImageMeta {
        let mut f = self.fields();
        let mut next = || f.next().unwrap_or_default().to_string();
        let (title, artist, date, description, rights, owner) =
            (next(), next(), next(), next(), next(), next());
        ImageMeta {
            title,
            artist,
            date,
            description,
            rights,
            owner,
            keywords: self.fields().skip(FIXED).map(str::to_string).collect(),
        }
    }

    /// The fields a search reads: title, artist, date, description and each keyword.
    pub fn searched(&self) -> impl Iterator<Item = &str> + '_ {
        self.fields()
            .enumerate()
            .filter(|(i, _)| *i < 4 || *i >= FIXED)
            .map(|(_, field)| field)
    }

    /// Whether `word` (in lower case) begins a word of a searched field, ignoring case.
    pub fn has_word(&self, word: &str) -> bool {
        self.searched().any(|field| begins_a_word(field, word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(title: &str, keywords: &[&str]) -> ImageMeta {
        ImageMeta {
            title: title.into(),
            artist: "Katsushika Hokusai".into(),
            date: "c. 1831".into(),
            description: "Line one\nline: two".into(),
            keywords: keywords.iter().map(|k| k.to_string()).collect(),
            rights: "Public domain".into(),
            owner: "h-0a1b".into(),
        }
    }

    #[test]
    fn metadata_comes_back_as_it_went_in_colons_newlines_and_all() {
        for m in [
            meta("The Great Wave: 12:34", &["sea", "", "wave:big"]),
            meta("", &[]),
            ImageMeta::default(),
        ] {
            let p = PackedMeta::pack(&m);
            assert_eq!(p.unpack(), m);
            assert_eq!(p.title(), m.title);
            assert_eq!(p.artist(), m.artist);
        }
    }

    #[test]
    fn words_are_found_in_the_searched_fields_only_whatever_their_case() {
        let p = PackedMeta::pack(&meta("The Great WAVE", &["Mount Fuji"]));
        for word in [
            "great", "wave", "hokusai", "1831", "two", "fuji", "mount f", "c.",
        ] {
            assert!(p.has_word(word), "{word}");
        }
        // Rights and owner are not searched; nor are words across two fields.
        for word in ["public", "0a1b", "wavekatsushika", "tsunami", "ave"] {
            assert!(!p.has_word(word), "{word}");
        }
        let p = PackedMeta::pack(&meta("Ηλιοβασίλεμα ΣΤΗ ΘΆΛΑΣΣΑ", &[]));
        assert!(p.has_word("θάλασσα") && p.has_word("στη"));
    }

    proptest! {
        #[test]
        fn any_metadata_round_trips(title in ".{0,20}", keywords in proptest::collection::vec(".{0,8}", 0..4)) {
            let m = ImageMeta { title, keywords, ..ImageMeta::default() };
            prop_assert_eq!(PackedMeta::pack(&m).unpack(), m);
        }
    }
}
