//! Field names. Every field of every record holds its name, so a name is cloned once per field
//! on the decoding threads and dropped on the thread that writes the output. As an `Arc<str>`
//! each clone and drop changed its reference count, and that cache line moved between the
//! cores for every field: 14% of all the CPU time of NDJSON -> CSV went to those two
//! instructions. Names are interned instead: one copy of each distinct name for the whole
//! process, and a clone copies a pointer.
//!
//! Interned names are never freed. The keys of some inputs are data (a map keyed by order id),
//! so past a budget of distinct names (1 MiB of their text) a new name is reference-counted
//! like before: memory stays bounded, only such inputs pay the counting.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

/// A field name: a cheap-to-clone shared string.
#[derive(Clone)]
pub struct FieldName(Repr);

#[derive(Clone)]
enum Repr {
    Interned(&'static str),
    Counted(Arc<str>),
}

/// The interned names, and the bytes they take.
struct Interned {
    names: HashSet<&'static str>,
    bytes: usize,
}

/// The most memory interned names may take (text and table), in bytes.
const BUDGET_BYTES: usize = 1 << 20;
/// What the table spends on a name besides its text.
const PER_NAME_BYTES: usize = 32;

static INTERNED: LazyLock<Mutex<Interned>> = LazyLock::new(|| {
    Mutex::new(Interned {
        names: HashSet::new(),
        bytes: 0,
    })
});

impl FieldName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Interned(name) => name,
            Repr::Counted(name) => name,
        }
    }

    /// Whether both are the same copy of a name (then they are equal; different copies may
    /// be equal too).
    pub fn ptr_eq(a: &FieldName, b: &FieldName) -> bool {
        std::ptr::eq(a.as_str(), b.as_str())
    }

    fn new(name: &str) -> Self {
        // A poisoned lock only means another thread panicked while interning: the set is whole.
        let mut interned = INTERNED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        interned.name(name)
    }
}

impl Interned {
    /// `name`'s one copy, made if need be; a counted copy past the budget.
    fn name(&mut self, name: &str) -> FieldName {
        if let Some(&known) = self.names.get(name) {
            return FieldName(Repr::Interned(known));
        }
        let cost = name.len() + PER_NAME_BYTES;
        if self.bytes + cost > BUDGET_BYTES {
            return FieldName(Repr::Counted(Arc::from(name)));
        }
        let leaked: &'static str = Box::leak(Box::from(name));
        self.names.insert(leaked);
        self.bytes += cost;
        FieldName(Repr::Interned(leaked))
    }
}

impl From<&str> for FieldName {
    fn from(name: &str) -> Self {
        FieldName::new(name)
    }
}

impl From<String> for FieldName {
    fn from(name: String) -> Self {
        FieldName::new(&name)
    }
}

impl std::ops::Deref for FieldName {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for FieldName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for FieldName {
    fn eq(&self, other: &Self) -> bool {
        FieldName::ptr_eq(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for FieldName {}

impl Hash for FieldName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_copy_of_each_name_and_equal_by_text() {
        let a = FieldName::from("order_id");
        let b = FieldName::from(String::from("order_id"));
        assert!(FieldName::ptr_eq(&a, &b));
        assert_eq!(a, b);
        assert_ne!(a, FieldName::from("order_ids"));
        assert_eq!(&*a, "order_id");
        assert_eq!(format!("{a} {a:?}"), "order_id \"order_id\"");
    }

    #[test]
    fn past_the_budget_names_are_counted_and_still_equal() {
        let mut interned = Interned {
            names: HashSet::new(),
            bytes: 0,
        };
        let first = interned.name("budget-0");
        let mut last = first.clone();
        for index in 1..=(BUDGET_BYTES / PER_NAME_BYTES) {
            last = interned.name(&format!("budget-{index}"));
        }
        assert!(matches!(last.0, Repr::Counted(_)));
        let again = interned.name(last.as_str());
        assert!(!FieldName::ptr_eq(&last, &again));
        assert_eq!(last, again);
        // Names interned before the budget ran out stay one copy.
        assert!(FieldName::ptr_eq(&first, &interned.name("budget-0")));
        let mut names = HashSet::new();
        names.insert(last);
        assert!(names.contains("budget-32768"));
    }
}
