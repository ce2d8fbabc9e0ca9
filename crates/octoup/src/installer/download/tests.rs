use super::*;

fn range(v: &str) -> Option<ContentRange> {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_RANGE, HeaderValue::from_str(v).unwrap());
    parse_content_range(&h)
}

#[test]
fn content_range_parsing() {
    assert_eq!(
        range("bytes 100-999/1000"),
        Some(ContentRange {
            start: 100,
            end: 999,
            total: Some(1000)
        })
    );
    assert_eq!(range("bytes 5-9/*").unwrap().total, None);
    assert_eq!(range("bytes */1000").unwrap().total, Some(1000));
    assert_eq!(range("bytes 9-5/10"), None);
    assert_eq!(range("bytes 0-10/10"), None);
    assert_eq!(range("items 0-1/2"), None);
    assert_eq!(range("bytes x-1/2"), None);
}

#[test]
fn disk_full_kinds() {
    assert!(is_disk_full(&io::Error::from(io::ErrorKind::StorageFull)));
    assert!(!is_disk_full(&io::Error::from(
        io::ErrorKind::PermissionDenied
    )));
}
