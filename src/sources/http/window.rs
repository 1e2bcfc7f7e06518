//! Time windows: a delta pull (or a back-fill) sliced into windows asked for one after the
//! other, oldest first, so that the cursor can move window by window; and the halving of a
//! window whose answer came back with exactly the API's cap of records (an export that stops at
//! 50,000), which would otherwise be cut off without a sound.

use std::collections::VecDeque;

use super::delta::{parse_time, shift_time};

/// The windows still to pull, as cursor values written like the cursor.
pub(super) struct Windows {
    queue: VecDeque<(String, String)>,
    /// Windows halved because their answer reached the cap.
    pub(super) splits: u64,
}

impl Windows {
    /// `[from, until)` in windows of `seconds`.
    pub(super) fn new(from: &str, until: &str, seconds: u64) -> Result<Self, String> {
        let total = seconds_between(from, until)?;
        let mut queue = VecDeque::new();
        let mut start = 0;
        while start < total {
            let end = (start + seconds as i64).min(total);
            queue.push_back((shifted(from, start)?, shifted(from, end)?));
            start = end;
        }
        Ok(Windows { queue, splits: 0 })
    }

    pub(super) fn next(&mut self) -> Option<(String, String)> {
        self.queue.pop_front()
    }

    /// Puts the two halves of `[from, until)` first in line.
    pub(super) fn split(&mut self, from: &str, until: &str) -> Result<(), String> {
        let length = seconds_between(from, until)?;
        if length < 2 {
            return Err(format!(
                "the window from {from} to {until} still reaches the cap: it cannot be split further"
            ));
        }
        let middle = shifted(from, length / 2)?;
        self.queue.push_front((middle.clone(), until.to_string()));
        self.queue.push_front((from.to_string(), middle));
        self.splits += 1;
        Ok(())
    }
}

/// A window's length: `"1d"`, `"6h"`, `"15m"`, `"30s"` in seconds.
pub(super) fn window_seconds(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return None,
    };
    let count: u64 = text[..text.len() - 1].parse().ok()?;
    (count > 0).then_some(count * unit)
}

fn seconds_between(from: &str, until: &str) -> Result<i64, String> {
    let time = |text: &str| {
        parse_time(text)
            .ok_or_else(|| format!("`{text}` is not a timestamp a window can start or end at"))
    };
    Ok((time(until)? - time(from)?).num_seconds())
}

fn shifted(from: &str, seconds: i64) -> Result<String, String> {
    shift_time(from, seconds).ok_or_else(|| format!("`{from}` is not a timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_and_halve() {
        let mut windows =
            Windows::new("2024-08-01T00:00:00Z", "2024-08-03T12:00:00Z", 86_400).unwrap();
        let (from, until) = windows.next().unwrap();
        assert_eq!(
            (from.as_str(), until.as_str()),
            ("2024-08-01T00:00:00Z", "2024-08-02T00:00:00Z")
        );
        windows.split(&from, &until).unwrap();
        let all: Vec<(String, String)> = std::iter::from_fn(|| windows.next()).collect();
        assert_eq!(
            all,
            [
                ("2024-08-01T00:00:00Z", "2024-08-01T12:00:00Z"),
                ("2024-08-01T12:00:00Z", "2024-08-02T00:00:00Z"),
                ("2024-08-02T00:00:00Z", "2024-08-03T00:00:00Z"),
                ("2024-08-03T00:00:00Z", "2024-08-03T12:00:00Z"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert!(
            Windows::new("2024-08-01T00:00:00", "2024-08-01T00:00:01", 60)
                .unwrap()
                .split("2024-08-01T00:00:00", "2024-08-01T00:00:01")
                .is_err()
        );
        assert_eq!(window_seconds("1d"), Some(86_400));
        assert_eq!(window_seconds("15m"), Some(900));
        assert_eq!(window_seconds("0h"), None);
        assert_eq!(window_seconds("1w"), None);
    }
}
