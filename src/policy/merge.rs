//! The topological merge of mirror lists (the same order OpenShift's MCO produces).
//!
//! One graph per source: one node per distinct mirror, an edge between consecutive mirrors of every
//! list and from the last mirror to the source when the source is not in the list. Kahn's algorithm
//! with a FIFO queue seeded in bytewise order; a cycle is broken by taking the smallest remaining node.
//! The result does not depend on the order of the lists, only on their contents.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Merges the mirror lists of every entry for `source` into one preference order. The source itself
/// is dropped when it comes out last, since the runtime tries it after the mirrors anyway.
pub fn merge_mirror_lists<S: AsRef<str>>(source: &str, lists: &[&[S]]) -> Vec<String> {
    // One list without repeats is a chain: the graph gives it back as it is. This is by far the
    // most common case, so it skips building the graph.
    if let [only] = lists {
        let mut seen = <foldhash::HashSet<&str> as foldhash::HashSetExt>::with_capacity(only.len());
        if only.iter().all(|m| seen.insert(m.as_ref())) {
            let mut out: Vec<String> = only.iter().map(|m| m.as_ref().to_string()).collect();
            if out.last().map(String::as_str) == Some(source) {
                out.pop();
            }
            return out;
        }
    }
    // BTreeMap/BTreeSet give the bytewise order the algorithm is defined with.
    let mut successors: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for list in lists {
        let list: Vec<&str> = list.iter().map(AsRef::as_ref).collect();
        for m in &list {
            successors.entry(m).or_default();
        }
        for pair in list.windows(2) {
            successors.get_mut(pair[0]).expect("inserted above").insert(pair[1]);
        }
        if let Some(last) = list.last() {
            if !list.contains(&source) {
                successors.get_mut(last).expect("inserted above").insert(source);
                successors.entry(source).or_default();
            }
        }
    }
    let mut in_degree: BTreeMap<&str, usize> = successors.keys().map(|k| (*k, 0)).collect();
    for succ in successors.values() {
        for s in succ {
            *in_degree.get_mut(s).expect("every successor is a node") += 1;
        }
    }

    let mut queue: VecDeque<&str> = in_degree.iter().filter(|(_, d)| **d == 0).map(|(k, _)| *k).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order: Vec<&str> = Vec::with_capacity(successors.len());
    // Every node in bytewise order, and the first one that may not be placed yet: placed nodes stay
    // placed, so the smallest unplaced one only moves forward (scanning from the start each time
    // made many cycles quadratic).
    let sorted: Vec<&str> = successors.keys().copied().collect();
    let mut smallest = 0;
    while order.len() < successors.len() {
        let node = match queue.pop_front() {
            Some(n) => n,
            // A cycle: no node is free, so take the smallest one not yet placed.
            None => {
                while done.contains(sorted[smallest]) {
                    smallest += 1;
                }
                sorted[smallest]
            }
        };
        if !done.insert(node) {
            continue;
        }
        order.push(node);
        for s in &successors[node] {
            if done.contains(s) {
                continue;
            }
            let d = in_degree.get_mut(s).expect("every successor is a node");
            *d = d.saturating_sub(1);
            if *d == 0 {
                queue.push_back(s);
            }
        }
    }
    if order.last() == Some(&source) {
        order.pop();
    }
    order.into_iter().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(lists: &[&[&str]]) -> Vec<String> {
        merge_mirror_lists("src", lists)
    }

    #[test]
    fn chains_overlapping_lists() {
        assert_eq!(merge(&[&["a", "b", "c"], &["c", "d", "e"]]), ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn breaks_a_cycle_with_the_smallest_node() {
        assert_eq!(merge(&[&["zz", "aa"], &["aa", "zz"]]), ["aa", "zz"]);
    }

    #[test]
    fn uses_a_fifo_queue_not_a_heap() {
        assert_eq!(merge(&[&["a", "z"], &["b", "c"]]), ["a", "b", "z", "c"]);
    }

    #[test]
    fn keeps_the_admins_order_for_one_list() {
        assert_eq!(merge(&[&["zz.io", "aa.io", "mm.io"]]), ["zz.io", "aa.io", "mm.io"]);
    }

    #[test]
    fn drops_the_source_only_when_it_is_last() {
        assert_eq!(merge(&[&["a", "src"]]), ["a"]);
        // The source placed before a mirror stays where the admin put it.
        assert_eq!(merge(&[&["src", "a"]]), ["src", "a"]);
    }

    #[test]
    fn duplicates_inside_one_list_do_not_repeat() {
        assert_eq!(merge(&[&["a", "b", "a"]]), ["a", "b"]);
    }

    #[test]
    fn three_way_cycle_is_deterministic() {
        let lists: [&[&str]; 3] = [&["a", "b"], &["b", "c"], &["c", "a"]];
        let expected = merge(&lists);
        assert_eq!(expected, ["a", "b", "c"]);
        for perm in [[2, 0, 1], [1, 2, 0], [2, 1, 0]] {
            let permuted: Vec<&[&str]> = perm.iter().map(|i| lists[*i]).collect();
            assert_eq!(merge(&permuted), expected);
        }
    }

    #[test]
    fn many_cycles_are_broken_smallest_first() {
        // 20,000 two-mirror cycles, [a_i, b_i] and [b_i, a_i] (breaking them used to rescan every
        // node each time: quadratic). Each is broken at its smallest node, a_i, which frees b_i.
        let pairs: Vec<[String; 2]> = (0..20_000).map(|i| [format!("a{i:05}.io"), format!("b{i:05}.io")]).collect();
        let forward: Vec<Vec<String>> = pairs.iter().map(|p| p.to_vec()).collect();
        let backward: Vec<Vec<String>> = pairs.iter().map(|p| vec![p[1].clone(), p[0].clone()]).collect();
        let lists: Vec<&[String]> = forward.iter().chain(&backward).map(Vec::as_slice).collect();
        let merged = merge_mirror_lists("q.io", &lists);
        let expected: Vec<String> = pairs.into_iter().flatten().collect();
        assert_eq!(merged, expected);
    }
}
