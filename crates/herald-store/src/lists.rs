//! List operations: pushes and pops at both ends, ranges, indexes, trims, removal,
//! insertion, LPOS, LMOVE and LMPOP.
//!
//! A list that becomes empty is deleted, as in Redis. Indexes follow Redis: negative
//! values count from the tail, ranges are clamped, and out-of-range reads are empty.

use bytes::Bytes;

use crate::db::Db;
use crate::error::StoreError;
use crate::events;
use crate::packed::PackedList;
use crate::value::Value;

/// Which end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The head (LPUSH, LPOP, LEFT).
    Left,
    /// The tail (RPUSH, RPOP, RIGHT).
    Right,
}

impl End {
    /// The keyspace event of `action` ("push" or "pop") at this end.
    fn event(self, action: &str) -> &'static str {
        match (self, action) {
            (End::Left, "push") => "lpush",
            (End::Right, "push") => "rpush",
            (End::Left, _) => "lpop",
            (End::Right, _) => "rpop",
        }
    }
}

fn list<'a>(
    db: &'a mut Db,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<&'a mut PackedList>, StoreError> {
    match db.get_mut(key, now_ms) {
        None => Ok(None),
        Some(Value::List(list)) => Ok(Some(list)),
        Some(_) => Err(StoreError::WrongType),
    }
}

/// LPUSH/RPUSH (and the X forms with `only_if_exists`); returns the new length, 0 when an
/// X form found no list.
pub fn push(
    db: &mut Db,
    key: &Bytes,
    values: &[Bytes],
    end: End,
    only_if_exists: bool,
    now_ms: u64,
) -> Result<usize, StoreError> {
    let existing = list(db, key, now_ms)?.is_some();
    if only_if_exists && !existing {
        return Ok(0);
    }
    let Value::List(list) = db.get_or_insert_with(key, now_ms, || Value::List(Box::default()))
    else {
        return Err(StoreError::WrongType);
    };
    for value in values {
        match end {
            End::Left => list.push_front(value),
            End::Right => list.push_back(value),
        }
    }
    let len = list.len();
    db.notify(events::LIST, end.event("push"), key);
    Ok(len)
}

/// `LPOP`/`RPOP key [count]`: up to `count` elements from `end`; `None` when the key is missing.
pub fn pop(
    db: &mut Db,
    key: &[u8],
    end: End,
    count: usize,
    now_ms: u64,
) -> Result<Option<Vec<Bytes>>, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(None);
    };
    let take = count.min(list.len());
    let popped: Vec<Bytes> = match end {
        End::Left => (0..take).filter_map(|_| list.pop_front()).collect(),
        End::Right => (0..take).filter_map(|_| list.pop_back()).collect(),
    };
    if !popped.is_empty() {
        db.notify(events::LIST, end.event("pop"), key);
        db.remove_if_empty(key);
    }
    Ok(Some(popped))
}

/// LLEN.
pub fn len(db: &mut Db, key: &[u8], now_ms: u64) -> Result<usize, StoreError> {
    Ok(list(db, key, now_ms)?.map_or(0, |list| list.len()))
}

/// Redis's range normalisation: `None` for an empty range, else inclusive bounds.
fn normalize(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

/// LRANGE key start stop.
pub fn range(
    db: &mut Db,
    key: &[u8],
    start: i64,
    stop: i64,
    now_ms: u64,
) -> Result<Vec<Bytes>, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(Vec::new());
    };
    Ok(match normalize(start, stop, list.len()) {
        Some((first, last)) => list
            .iter()
            .skip(first)
            .take(last + 1 - first)
            .map(Bytes::copy_from_slice)
            .collect(),
        None => Vec::new(),
    })
}

fn position(index: i64, len: usize) -> Option<usize> {
    let index = if index < 0 { len as i64 + index } else { index };
    (0..len as i64).contains(&index).then_some(index as usize)
}

/// LINDEX key index.
pub fn index(
    db: &mut Db,
    key: &[u8],
    index: i64,
    now_ms: u64,
) -> Result<Option<Bytes>, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(None);
    };
    Ok(position(index, list.len()).and_then(|at| list.get(at)))
}

/// LSET key index element.
pub fn set(
    db: &mut Db,
    key: &[u8],
    index: i64,
    value: &Bytes,
    now_ms: u64,
) -> Result<(), StoreError> {
    let list = list(db, key, now_ms)?.ok_or(StoreError::NoSuchKey)?;
    let at = position(index, list.len()).ok_or(StoreError::IndexOutOfRange)?;
    list.set(at, value);
    db.notify(events::LIST, "lset", key);
    Ok(())
}

/// LTRIM key start stop.
pub fn trim(db: &mut Db, key: &[u8], start: i64, stop: i64, now_ms: u64) -> Result<(), StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(());
    };
    match normalize(start, stop, list.len()) {
        Some((first, last)) => list.keep_range(first, last),
        None => *list = PackedList::new(),
    }
    db.notify(events::LIST, "ltrim", key);
    db.remove_if_empty(key);
    Ok(())
}

/// LREM key count element: removes up to |count| matches (all when 0), from the head
/// when count > 0 and from the tail when count < 0. Returns how many it removed.
pub fn remove(
    db: &mut Db,
    key: &[u8],
    count: i64,
    element: &[u8],
    now_ms: u64,
) -> Result<usize, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(0);
    };
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    // Mark the matches to drop, from the head or from the tail, then rebuild once.
    let matches: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, item)| *item == element)
        .map(|(at, _)| at)
        .collect();
    let dropped: Vec<usize> = if count >= 0 {
        matches.into_iter().take(limit).collect()
    } else {
        matches.into_iter().rev().take(limit).collect()
    };
    let removed = dropped.len();
    if removed > 0 {
        let mut drop = vec![false; list.len()];
        for at in dropped {
            drop[at] = true;
        }
        let rebuilt = PackedList::from_values(
            list.iter()
                .zip(drop)
                .filter(|(_, dropped)| !dropped)
                .map(|(item, _)| item),
        );
        *list = rebuilt;
    }
    if removed > 0 {
        db.notify(events::LIST, "lrem", key);
        db.remove_if_empty(key);
    }
    Ok(removed)
}

/// LINSERT key BEFORE|AFTER pivot element: the new length, -1 when the pivot is not
/// found, 0 when the key is missing.
pub fn insert(
    db: &mut Db,
    key: &[u8],
    after: bool,
    pivot: &[u8],
    element: &Bytes,
    now_ms: u64,
) -> Result<i64, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(0);
    };
    let Some(at) = list.iter().position(|item| item == pivot) else {
        return Ok(-1);
    };
    list.insert(at + usize::from(after), element);
    let len = list.len() as i64;
    db.notify(events::LIST, "linsert", key);
    Ok(len)
}

/// LPOS key element [RANK rank] [COUNT count] [MAXLEN len]: indexes of matches, at most
/// `count` of them (0 = all), starting at the `rank`-th match (negative: from the tail),
/// looking at no more than `maxlen` elements (0 = all).
pub fn positions(
    db: &mut Db,
    key: &[u8],
    element: &[u8],
    rank: i64,
    count: usize,
    maxlen: usize,
    now_ms: u64,
) -> Result<Vec<usize>, StoreError> {
    let Some(list) = list(db, key, now_ms)? else {
        return Ok(Vec::new());
    };
    let wanted = if count == 0 { usize::MAX } else { count };
    let scan = if maxlen == 0 {
        list.len()
    } else {
        maxlen.min(list.len())
    };
    let skip = (rank.unsigned_abs() as usize).saturating_sub(1);
    let len = list.len();
    let matches = list
        .iter()
        .enumerate()
        .filter(|(_, item)| *item == element)
        .map(|(at, _)| at);
    Ok(if rank >= 0 {
        matches
            .take_while(|&at| at < scan)
            .skip(skip)
            .take(wanted)
            .collect()
    } else {
        let from_tail: Vec<usize> = matches.filter(|&at| at >= len - scan).collect();
        from_tail
            .into_iter()
            .rev()
            .skip(skip)
            .take(wanted)
            .collect()
    })
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT (RPOPLPUSH is RIGHT LEFT): the moved
/// element, `None` when the source is missing. A wrong-typed destination fails before
/// anything is popped.
pub fn move_element(
    db: &mut Db,
    source: &[u8],
    destination: &Bytes,
    from: End,
    to: End,
    now_ms: u64,
) -> Result<Option<Bytes>, StoreError> {
    if list(db, source, now_ms)?.is_none() {
        return Ok(None);
    }
    list(db, destination, now_ms)?;
    let Some(mut popped) = pop(db, source, from, 1, now_ms)? else {
        return Ok(None);
    };
    let Some(element) = popped.pop() else {
        return Ok(None);
    };
    push(
        db,
        destination,
        std::slice::from_ref(&element),
        to,
        false,
        now_ms,
    )?;
    Ok(Some(element))
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: pops from the first non-empty
/// list; `None` when all are empty.
pub fn multi_pop(
    db: &mut Db,
    keys: &[Bytes],
    end: End,
    count: usize,
    now_ms: u64,
) -> Result<Option<(Bytes, Vec<Bytes>)>, StoreError> {
    for key in keys {
        if let Some(popped) = pop(db, key, end, count, now_ms)? {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn items(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| b(w)).collect()
    }

    fn filled(words: &[&str]) -> Db {
        let mut db = Db::default();
        push(&mut db, &b("l"), &items(words), End::Right, false, 0).unwrap();
        db
    }

    #[test]
    fn pushes_and_pops() {
        let mut db = Db::default();
        assert_eq!(
            push(
                &mut db,
                &b("l"),
                &items(&["a", "b", "c"]),
                End::Left,
                false,
                0
            ),
            Ok(3)
        );
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["c", "b", "a"])
        );
        assert_eq!(
            push(&mut db, &b("none"), &items(&["x"]), End::Left, true, 0),
            Ok(0)
        );
        assert!(!db.contains(b"none", 0));
        assert_eq!(
            pop(&mut db, b"l", End::Right, 2, 0).unwrap(),
            Some(items(&["a", "b"]))
        );
        assert_eq!(
            pop(&mut db, b"l", End::Left, 5, 0).unwrap(),
            Some(items(&["c"]))
        );
        assert!(!db.contains(b"l", 0), "an emptied list is deleted");
        assert_eq!(pop(&mut db, b"l", End::Left, 1, 0).unwrap(), None);
    }

    #[test]
    fn ranges_like_redis() {
        let mut db = filled(&["a", "b", "c", "d"]);
        assert_eq!(range(&mut db, b"l", 1, 2, 0).unwrap(), items(&["b", "c"]));
        assert_eq!(
            range(&mut db, b"l", -2, 100, 0).unwrap(),
            items(&["c", "d"])
        );
        assert_eq!(range(&mut db, b"l", -100, 0, 0).unwrap(), items(&["a"]));
        assert!(range(&mut db, b"l", 3, 1, 0).unwrap().is_empty());
        assert!(range(&mut db, b"l", 5, 10, 0).unwrap().is_empty());
        assert!(range(&mut db, b"l", 0, -5, 0).unwrap().is_empty());
        assert_eq!(index(&mut db, b"l", -1, 0).unwrap(), Some(b("d")));
        assert_eq!(index(&mut db, b"l", 4, 0).unwrap(), None);
    }

    #[test]
    fn set_and_trim() {
        let mut db = filled(&["a", "b", "c", "d", "e"]);
        set(&mut db, b"l", -1, &b("E"), 0).unwrap();
        assert_eq!(
            set(&mut db, b"l", 5, &b("x"), 0),
            Err(StoreError::IndexOutOfRange)
        );
        assert_eq!(
            set(&mut db, b"nope", 0, &b("x"), 0),
            Err(StoreError::NoSuchKey)
        );
        trim(&mut db, b"l", 1, -2, 0).unwrap();
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["b", "c", "d"])
        );
        trim(&mut db, b"l", 5, 10, 0).unwrap();
        assert!(!db.contains(b"l", 0));
    }

    #[test]
    fn notification_history_capped_at_100() {
        let mut db = Db::default();
        for i in 0..150 {
            push(
                &mut db,
                &b("inbox"),
                &[Bytes::from(i.to_string())],
                End::Left,
                false,
                0,
            )
            .unwrap();
            trim(&mut db, b"inbox", 0, 99, 0).unwrap();
        }
        assert_eq!(len(&mut db, b"inbox", 0), Ok(100));
        assert_eq!(index(&mut db, b"inbox", 0, 0).unwrap(), Some(b("149")));
        assert_eq!(index(&mut db, b"inbox", -1, 0).unwrap(), Some(b("50")));
    }

    #[test]
    fn remove_from_either_end() {
        let mut db = filled(&["x", "a", "x", "b", "x"]);
        assert_eq!(remove(&mut db, b"l", -2, b"x", 0), Ok(2));
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["x", "a", "b"])
        );
        let mut db = filled(&["x", "a", "x", "b", "x"]);
        assert_eq!(remove(&mut db, b"l", 1, b"x", 0), Ok(1));
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["a", "x", "b", "x"])
        );
        assert_eq!(remove(&mut db, b"l", 0, b"x", 0), Ok(2));
        assert_eq!(remove(&mut db, b"l", 0, b"a", 0), Ok(1));
        assert_eq!(remove(&mut db, b"l", 0, b"b", 0), Ok(1));
        assert!(!db.contains(b"l", 0));
    }

    #[test]
    fn insert_around_a_pivot() {
        let mut db = filled(&["a", "c"]);
        assert_eq!(insert(&mut db, b"l", false, b"c", &b("b"), 0), Ok(3));
        assert_eq!(insert(&mut db, b"l", true, b"c", &b("d"), 0), Ok(4));
        assert_eq!(insert(&mut db, b"l", true, b"zz", &b("d"), 0), Ok(-1));
        assert_eq!(insert(&mut db, b"none", true, b"a", &b("d"), 0), Ok(0));
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["a", "b", "c", "d"])
        );
    }

    #[test]
    fn lpos_rank_count_maxlen() {
        let mut db = filled(&["a", "b", "c", "1", "2", "3", "c", "c"]);
        assert_eq!(positions(&mut db, b"l", b"c", 1, 1, 0, 0).unwrap(), vec![2]);
        assert_eq!(positions(&mut db, b"l", b"c", 2, 1, 0, 0).unwrap(), vec![6]);
        assert_eq!(
            positions(&mut db, b"l", b"c", -1, 1, 0, 0).unwrap(),
            vec![7]
        );
        assert_eq!(
            positions(&mut db, b"l", b"c", 1, 0, 0, 0).unwrap(),
            vec![2, 6, 7]
        );
        assert_eq!(
            positions(&mut db, b"l", b"c", -1, 2, 0, 0).unwrap(),
            vec![7, 6]
        );
        assert_eq!(positions(&mut db, b"l", b"c", 1, 0, 3, 0).unwrap(), vec![2]);
        assert!(positions(&mut db, b"l", b"zz", 1, 0, 0, 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn lmove_rotates_and_checks_types_first() {
        let mut db = filled(&["a", "b", "c"]);
        assert_eq!(
            move_element(&mut db, b"l", &b("l"), End::Right, End::Left, 0),
            Ok(Some(b("c")))
        );
        assert_eq!(
            range(&mut db, b"l", 0, -1, 0).unwrap(),
            items(&["c", "a", "b"])
        );
        crate::strings::set(&mut db, &b("s"), b("v"), Default::default(), 0).unwrap();
        assert_eq!(
            move_element(&mut db, b"l", &b("s"), End::Left, End::Left, 0),
            Err(StoreError::WrongType)
        );
        assert_eq!(
            len(&mut db, b"l", 0),
            Ok(3),
            "nothing popped on a type error"
        );
        assert_eq!(
            move_element(&mut db, b"none", &b("x"), End::Left, End::Left, 0),
            Ok(None)
        );
        assert_eq!(
            push(&mut db, &b("s"), &items(&["x"]), End::Left, false, 0),
            Err(StoreError::WrongType)
        );
    }

    #[test]
    fn lmpop_takes_the_first_non_empty_list() {
        let mut db = filled(&["a", "b"]);
        let keys = items(&["missing", "l"]);
        assert_eq!(
            multi_pop(&mut db, &keys, End::Right, 5, 0).unwrap(),
            Some((b("l"), items(&["b", "a"])))
        );
        assert_eq!(multi_pop(&mut db, &keys, End::Right, 5, 0).unwrap(), None);
    }
}
