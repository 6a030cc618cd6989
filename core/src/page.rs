//! Pages of a list: the `limit` and `cursor` query parameters every list endpoint takes, and
//! the opaque `next_cursor` its answer carries.
//!
//! Lists are paged by keyset, not by offset: a cursor names the last item of the page before
//! (its `(created_at, id)`, its path, or its version number), and the next page is what sorts
//! after it. Items added or removed meanwhile neither shift nor repeat the pages, and a deep
//! page costs the same index seek as the first.
//!
//! Cursors are base64url text. Only [`PageParams::parse`] reads them back, so a client that
//! edits one gets a 400 naming `cursor`, never a server error. A cursor is a position, not a
//! credential: one edited into another valid position only pages from there, through the
//! same visibility checks as any page.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// `limit` when none is given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// The largest `limit` accepted.
pub const MAX_PAGE_LIMIT: u32 = 200;

/// The longest cursor text decoded: a path key holds at most a
/// [`crate::secret_path::MAX_SECRET_PATH_LEN`]-byte path, which base64 makes 4/3 longer.
const MAX_CURSOR_LEN: usize = 1024;

/// A position in one kind of list, written into a cursor and read back from one.
pub trait CursorKey: Sized {
    /// The letter that tags this kind of key, so a cursor of one kind of list never reads
    /// as another's.
    const TAG: char;
    /// The key as text (without the tag).
    fn write(&self) -> String;
    /// Reads back what [`write`](Self::write) wrote; `None` for anything else.
    fn read(raw: &str) -> Option<Self>;
}

/// Lists in creation order: after the item created at `created_at` (microseconds, as stored)
/// with id `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl CursorKey for TimeKey {
    const TAG: char = 't';

    fn write(&self) -> String {
        format!(
            "{}.{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        )
    }

    fn read(raw: &str) -> Option<Self> {
        let (micros, id) = raw.split_once('.')?;
        Some(Self {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Lists by secret path: after this path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathKey(pub String);

impl CursorKey for PathKey {
    const TAG: char = 'p';

    fn write(&self) -> String {
        self.0.clone()
    }

    fn read(raw: &str) -> Option<Self> {
        // Any path sorts somewhere; only its size is bounded (by the cursor's length).
        Some(Self(raw.to_owned()))
    }
}

/// Lists of versions, newest first: after (below) this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionKey(pub i32);

impl CursorKey for VersionKey {
    const TAG: char = 'v';

    fn write(&self) -> String {
        self.0.to_string()
    }

    fn read(raw: &str) -> Option<Self> {
        let version: i32 = raw.parse().ok()?;
        (version >= 1 && raw.bytes().all(|b| b.is_ascii_digit())).then_some(Self(version))
    }
}

/// The text form of `key` handed to clients.
pub fn encode_cursor<K: CursorKey>(key: &K) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", K::TAG, key.write());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Reads back what [`encode_cursor`] wrote for the same kind of key; `None` for anything else.
pub fn decode_cursor<K: CursorKey>(text: &str) -> Option<K> {
    use base64::Engine as _;
    if text.len() > MAX_CURSOR_LEN {
        return None;
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let raw = std::str::from_utf8(&raw).ok()?;
    let (tag, key) = raw.split_once(':')?;
    let mut tag = tag.chars();
    (tag.next() == Some(K::TAG) && tag.next().is_none())
        .then(|| K::read(key))
        .flatten()
}

/// The paging query of a list, as sent. Text, so that a malformed value gets a 400 naming
/// it; [`PageParams::parse`] checks it. Other query parameters of a list (e.g. `prefix`)
/// are read alongside.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// The `next_cursor` of the page before; absent for the first page. Opaque: anything
    /// that is not a `next_cursor` of this list answers 400.
    #[param(min_length = 1, max_length = 1024, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// A checked [`PageParams`]: how many items, after which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<K> {
    pub limit: u32,
    pub after: Option<K>,
}

impl<K> Page<K> {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }

    /// How many rows to fetch: one more than the page holds, to learn whether another
    /// page follows.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The page size as a length.
    pub fn len(&self) -> usize {
        usize::try_from(self.limit).unwrap_or(usize::MAX)
    }

    /// Never: a page holds at least one item.
    pub fn is_empty(&self) -> bool {
        self.limit == 0
    }
}

impl PageParams {
    /// The page asked for; `Err` says which parameter is wrong, for a 400.
    pub fn parse<K: CursorKey>(&self) -> Result<Page<K>, String> {
        let limit = page_limit(self.limit.as_deref())?;
        let after = match self.cursor.as_deref() {
            None => None,
            Some(text) => Some(decode_cursor(text).ok_or_else(|| {
                "cursor must be the next_cursor of an earlier page of this list".to_owned()
            })?),
        };
        Ok(Page { limit, after })
    }
}

/// The page size asked for, checked: [`DEFAULT_PAGE_LIMIT`] when absent, else 1 to
/// [`MAX_PAGE_LIMIT`]. `Err` names the rule, for a 400.
pub fn page_limit(text: Option<&str>) -> Result<u32, String> {
    let Some(text) = text else {
        return Ok(DEFAULT_PAGE_LIMIT);
    };
    match text.trim().parse::<u32>() {
        Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(format!(
            "limit must be a whole number from 1 to {MAX_PAGE_LIMIT}"
        )),
    }
}

/// Cuts `rows` (fetched with [`Page::fetch`], one more than the page holds) down to the
/// page and returns the cursor of the next page: the key of the page's last item, or `None`
/// when nothing follows.
pub fn finish_page<T, K: CursorKey>(
    rows: &mut Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Option<String> {
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(|last| encode_cursor(&key(last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(raw: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    fn time_key() -> TimeKey {
        TimeKey {
            created_at: DateTime::from_timestamp_micros(1_800_000_000_123_456).unwrap(),
            id: Uuid::parse_str("3f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f").unwrap(),
        }
    }

    #[test]
    fn each_kind_of_cursor_reads_back_what_it_wrote() {
        let text = encode_cursor(&time_key());
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text}"
        );
        assert_eq!(decode_cursor(&text), Some(time_key()));
        let path = PathKey("db/prod/password_1".into());
        assert_eq!(decode_cursor(&encode_cursor(&path)), Some(path));
        assert_eq!(
            decode_cursor(&encode_cursor(&VersionKey(7))),
            Some(VersionKey(7))
        );
    }

    #[test]
    fn a_cursor_of_one_kind_of_list_does_not_read_as_another() {
        let time = encode_cursor(&time_key());
        assert_eq!(decode_cursor::<PathKey>(&time), None);
        assert_eq!(decode_cursor::<VersionKey>(&time), None);
        assert_eq!(
            decode_cursor::<TimeKey>(&encode_cursor(&VersionKey(3))),
            None
        );
    }

    #[test]
    fn anything_but_a_cursor_is_refused() {
        let id = "3f1c2d3e4b5a4c6d8e9f0a1b2c3d4e5f";
        for bad in [
            String::new(),
            "not base64!".to_owned(),
            b64("t:123"),
            b64(&format!("t:abc.{id}")),
            b64("t:123.not-a-uuid"),
            b64(&format!("t:{}.{id}", i64::MAX)),
            b64(&format!("123.{id}")),
            b64(&format!("tt:123.{id}")),
            "A".repeat(10_000),
        ] {
            assert_eq!(decode_cursor::<TimeKey>(&bad), None, "{bad:?}");
        }
        for bad in ["v:0", "v:-1", "v:+1", "v:x", "v:99999999999", "v:"] {
            assert_eq!(decode_cursor::<VersionKey>(&b64(bad)), None, "{bad}");
        }
        assert_eq!(decode_cursor::<PathKey>(&b64(&"x".repeat(2000))), None);
    }

    #[test]
    fn page_params_name_the_parameter_that_is_wrong() {
        assert_eq!(
            PageParams::default().parse::<TimeKey>(),
            Ok(Page::first(50))
        );
        let params = PageParams {
            limit: Some("7".into()),
            cursor: Some(encode_cursor(&time_key())),
        };
        assert_eq!(
            params.parse(),
            Ok(Page {
                limit: 7,
                after: Some(time_key())
            })
        );
        let bad_cursor = PageParams {
            cursor: Some("x".into()),
            ..PageParams::default()
        };
        assert!(
            bad_cursor
                .parse::<TimeKey>()
                .unwrap_err()
                .starts_with("cursor")
        );
        let bad_limit = PageParams {
            limit: Some("500".into()),
            ..PageParams::default()
        };
        assert!(
            bad_limit
                .parse::<TimeKey>()
                .unwrap_err()
                .starts_with("limit")
        );
    }

    #[test]
    fn the_limit_defaults_to_50_and_stays_within_1_to_200() {
        assert_eq!(page_limit(None), Ok(50));
        assert_eq!(page_limit(Some("1")), Ok(1));
        assert_eq!(page_limit(Some("200")), Ok(200));
        for bad in ["0", "201", "-1", "ten", "", "1.5", "99999999999"] {
            let err = page_limit(Some(bad)).unwrap_err();
            assert!(err.contains("1 to 200"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_page_is_cut_to_its_limit_and_points_after_its_last_item() {
        let mut rows = vec![1, 2, 3, 4];
        let next = finish_page(&mut rows, 3, |n| VersionKey(*n));
        assert_eq!(rows, [1, 2, 3]);
        assert_eq!(next.as_deref().and_then(decode_cursor), Some(VersionKey(3)));
        let mut last = vec![1, 2, 3];
        assert_eq!(finish_page(&mut last, 3, |n| VersionKey(*n)), None);
        assert_eq!(last, [1, 2, 3]);
    }
}
