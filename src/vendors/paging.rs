//! Offset paging (`$top`/`$skip`), shared by the OData-style backends (OME, Intersight): the
//! loop and its bounds, with the page read supplied by the backend.

use std::future::Future;

use serde_json::Value;

/// Pages a sweep of a whole collection may follow. A lookup's `max_pages` is far lower; a
/// sweep is bounded instead by the bytes it may read (`fleet.max_sweep_bytes`, enforced in
/// `Upstream`) and by `fleet.sweep_timeout`; this only ends a loop nothing else would.
pub const SWEEP_MAX_PAGES: u32 = 100_000;

/// One page of an offset-paged collection.
#[derive(Debug)]
pub struct Page {
    /// Matches of the whole query as the service reports them on every page (OME
    /// `@odata.count`, Intersight `Count`), when it does.
    pub count: Option<u64>,
    pub items: Vec<Value>,
}

/// Why paging stopped without an answer (the backend words it as a protocol failure).
#[derive(Debug, PartialEq, Eq)]
pub enum Overrun {
    /// A page larger than the `$top` asked.
    Oversized { len: u64, top: u32 },
    /// `max_pages` full pages and still no end.
    TooManyPages { max_pages: u32 },
    /// The reported count changed between pages: items were added or removed while the
    /// collection was paged, so offsets shifted and an item may have been skipped.
    Changed { was: u64, now: u64 },
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Oversized { len, top } => {
                write!(f, "a page of {len} items where $top = {top} was asked")
            }
            Self::TooManyPages { max_pages } => {
                write!(f, "more than max_pages = {max_pages} full pages")
            }
            Self::Changed { was, now } => write!(
                f,
                "the collection changed while it was paged (count {was}, then {now})"
            ),
        }
    }
}

/// Watches the count a collection reports on each of its pages: a count that moves between
/// pages means items came or went while it was paged, so offsets shifted and an item may have
/// been skipped. Offset and next-link paging alike.
#[derive(Debug, Default)]
pub struct CountWatch {
    first: Option<u64>,
}

impl CountWatch {
    /// The count one page reports, if it reports one.
    pub fn observe(&mut self, count: Option<u64>) -> Result<(), Overrun> {
        match (self.first, count) {
            (None, Some(c)) => self.first = Some(c),
            (Some(was), Some(now)) if was != now => return Err(Overrun::Changed { was, now }),
            _ => {}
        }
        Ok(())
    }
}

/// Every item, `fetch(skip)` reading the page that starts at `skip`, `top` at most each, until
/// the reported count, a short page or `max_pages` pages. Bounded whatever the service sends:
/// a page larger than `top`, or more than `max_pages` full pages, is `overrun` (a partial
/// answer could hide a match).
pub async fn offset_pages<E, Fut>(
    top: u32,
    max_pages: u32,
    mut fetch: impl FnMut(u64) -> Fut,
    overrun: impl Fn(Overrun) -> E,
) -> Result<Vec<Value>, E>
where
    Fut: Future<Output = Result<Page, E>>,
{
    let mut items = Vec::new();
    let mut received: u64 = 0;
    let mut counts = CountWatch::default();
    for _ in 0..max_pages {
        let page = fetch(received).await?;
        counts.observe(page.count).map_err(&overrun)?;
        let len = page.items.len() as u64;
        if len > u64::from(top) {
            return Err(overrun(Overrun::Oversized { len, top }));
        }
        received += len;
        items.extend(page.items);
        if len < u64::from(top) || page.count.is_some_and(|c| received >= c) {
            return Ok(items);
        }
    }
    Err(overrun(Overrun::TooManyPages { max_pages }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(n: usize, count: Option<u64>) -> Page {
        Page {
            count,
            items: vec![Value::Null; n],
        }
    }

    async fn run(pages: Vec<Page>, top: u32, max: u32) -> (Result<usize, Overrun>, Vec<u64>) {
        let mut pages = pages.into_iter();
        let mut skips = Vec::new();
        let got = offset_pages(
            top,
            max,
            |skip| {
                skips.push(skip);
                let p = pages.next().unwrap_or_else(|| page(0, None));
                async move { Ok::<_, Overrun>(p) }
            },
            |o| o,
        )
        .await
        .map(|v| v.len());
        (got, skips)
    }

    #[tokio::test]
    async fn ends_on_a_short_page_or_the_count() {
        let (got, skips) = run(vec![page(2, None), page(2, None), page(1, None)], 2, 9).await;
        assert_eq!((got, skips), (Ok(5), vec![0, 2, 4]));
        let (got, skips) = run(vec![page(2, Some(4)), page(2, Some(4))], 2, 9).await;
        assert_eq!((got, skips), (Ok(4), vec![0, 2]));
    }

    #[tokio::test]
    async fn oversized_pages_and_endless_paging_are_overruns() {
        let (got, _) = run(vec![page(3, None)], 2, 9).await;
        assert_eq!(got, Err(Overrun::Oversized { len: 3, top: 2 }));
        let full = (0..5).map(|_| page(2, None)).collect();
        let (got, skips) = run(full, 2, 3).await;
        assert_eq!(got, Err(Overrun::TooManyPages { max_pages: 3 }));
        assert_eq!(skips.len(), 3);
    }

    #[tokio::test]
    async fn a_count_that_changes_between_pages_is_reported() {
        let (got, _) = run(vec![page(2, Some(5)), page(2, Some(4))], 2, 9).await;
        assert_eq!(got, Err(Overrun::Changed { was: 5, now: 4 }));
    }
}
