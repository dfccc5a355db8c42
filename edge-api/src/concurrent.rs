//! Tiny runtime-free combinators for running futures concurrently on one
//! thread (both edge runtimes are single-threaded), without a futures crate.
//!
//! Concurrency matters at the edge: a batch of 100 KV lookups done one by
//! one costs 100 round trips; polled together they overlap.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;

/// Polls `a` and `b` together, `a` first on every wake, until both finish.
/// The order matters to callers that pipeline requests on one connection.
pub async fn join2<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none()
            && let Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                ra = x;
                rb = y;
                Poll::Pending
            }
        }
    })
    .await
}

/// Polls every future together; outputs keep the input order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(move |cx| {
        let mut pending = false;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(out.iter_mut().filter_map(Option::take).collect())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Yields once before finishing, recording the order of events.
    async fn step(log: &RefCell<Vec<String>>, name: &str, yields: usize) -> String {
        log.borrow_mut().push(format!("start {name}"));
        for _ in 0..yields {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
        }
        log.borrow_mut().push(format!("end {name}"));
        name.to_string()
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn join2_starts_both_in_order_and_overlaps_them() {
        let log = RefCell::new(Vec::new());
        let (a, b) = block_on(join2(step(&log, "a", 2), step(&log, "b", 1)));
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
        assert_eq!(
            log.borrow()[..2],
            ["start a".to_string(), "start b".to_string()]
        );
        assert_eq!(log.borrow()[2], "end b");
    }

    #[test]
    fn join_all_keeps_order() {
        let log = RefCell::new(Vec::new());
        let out = block_on(join_all(vec![
            step(&log, "x", 3),
            step(&log, "y", 0),
            step(&log, "z", 1),
        ]));
        assert_eq!(out, vec!["x", "y", "z"]);
        assert_eq!(log.borrow()[0], "start x");
        assert_eq!(log.borrow().last().map(String::as_str), Some("end x"));
        assert!(block_on(join_all(Vec::<std::future::Ready<()>>::new())).is_empty());
    }
}
